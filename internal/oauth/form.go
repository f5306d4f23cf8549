package oauth

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/latchkey/latchkey/internal/protocol"
)

// maxFormBytes caps a request body: an OAuth form is a few hundred bytes; a client
// assertion a few kilobytes.
const maxFormBytes = 64 << 10

const formType = "application/x-www-form-urlencoded"

// repeatable are the parameters RFC 8707 §2 and RFC 8693 §2.1 let a client send
// more than once.
var repeatable = map[string]bool{"resource": true, "audience": true}

// parseForm reads a POST body of application/x-www-form-urlencoded parameters, the
// only way the token, introspection and revocation endpoints take input.
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, &protocol.Error{Code: InvalidRequest, Description: "use POST", Status: http.StatusMethodNotAllowed}
	}
	if ct := r.Header.Get("Content-Type"); ct != formType { // the plain header needs no parsing
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != formType {
			return nil, protocol.New(InvalidRequest, "the body must be application/x-www-form-urlencoded")
		}
	}
	// Credentials and tokens never travel in the URL, where logs and proxies keep them.
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
		for _, p := range []string{"client_secret", "client_assertion", "token", "refresh_token", "code", "code_verifier", "password", "subject_token", "actor_token"} {
			if q.Has(p) {
				return nil, protocol.New(InvalidRequest, "parameter "+p+" must be sent in the body, not the URL")
			}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &protocol.Error{Code: InvalidRequest, Description: "request body too large", Status: http.StatusRequestEntityTooLarge}
		}
		return nil, protocol.New(InvalidRequest, "could not read the request body")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, protocol.New(InvalidRequest, "malformed form body")
	}
	// RFC 6749 §3.2: parameters must not be included more than once.
	for k, v := range form {
		if len(v) > 1 && !repeatable[k] {
			return nil, protocol.New(InvalidRequest, "parameter "+k+" is repeated")
		}
		if k == "" {
			return nil, protocol.New(InvalidRequest, "malformed form body")
		}
	}
	// A parameter sent without a value is treated as omitted (RFC 6749 §3.1).
	for k, v := range form {
		if len(v) == 1 && v[0] == "" {
			delete(form, k)
		}
	}
	return form, nil
}
