package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxBody bounds a request body.
const maxBody = 1 << 20

// decode reads a JSON body into v, refusing unknown fields, trailing data and
// bodies over maxBody. An empty body is an error unless optional.
func decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return problem(http.StatusRequestEntityTooLarge, "", "the request body is over 1 MiB")
	}
	if err != nil {
		return badRequest("could not read the request body")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if optional {
			return nil
		}
		return badRequest("a JSON request body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if dec.More() {
		return badRequest("the request body has data after its JSON value")
	}
	return nil
}

// bodyError turns a JSON decoding error into a problem naming the field.
func bodyError(err error) *Problem {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "json: unknown field "):
		field, _ := strconv.Unquote(strings.TrimPrefix(msg, "json: unknown field "))
		return invalidField(field, "unknown field")
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return invalidField(typeErr.Field, "must be "+jsonKind(typeErr.Type.Kind().String()))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the request body is not valid JSON")
	}
	return badRequest("the request body is invalid: %s", strings.TrimPrefix(msg, "json: "))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	return "a number"
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Pagination (cursor based): ?limit= (1 to maxLimit, default defaultLimit) and
// ?after= (the previous page's next).
const (
	defaultLimit = 50
	maxLimit     = 500
)

type pageQuery struct {
	limit int
	after string
}

func pageQueryOf(r *http.Request) (pageQuery, error) {
	q := pageQuery{limit: defaultLimit, after: r.URL.Query().Get("after")}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return q, invalidField("limit", "must be a whole number from 1 to 500")
		}
		q.limit = n
	}
	if len(q.after) > 1024 {
		return q, invalidField("after", "is not a cursor of this list")
	}
	return q, nil
}

// page is a page of a list; Next is absent on the last page.
type page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// pageOf pages items sorted by key: those after q.after, at most q.limit.
func pageOf[S, T any](items []S, q pageQuery, key func(S) string, view func(S) T) page[T] {
	p := page[T]{Items: []T{}}
	last := ""
	for _, it := range items {
		k := key(it)
		if q.after != "" && k <= q.after {
			continue
		}
		if len(p.Items) == q.limit {
			p.Next = last
			break
		}
		p.Items = append(p.Items, view(it))
		last = k
	}
	return p
}

// etag is a strong entity tag of a stored representation (RFC 9110 §8.8.3).
func etag(stored any) string {
	b, _ := json.Marshal(stored)
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// ifMatch reports whether the If-Match header (if any) admits the entity tag
// current (RFC 9110 §13.1.1); exists says whether there is a current entity.
func ifMatch(r *http.Request, current string, exists bool) bool {
	h := r.Header.Get("If-Match")
	if h == "" {
		return true
	}
	if !exists {
		return false
	}
	for _, t := range strings.Split(h, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == current {
			return true
		}
	}
	return false
}
