package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/storage"
)

// Pushed authorization requests (RFC 9126): a client POSTs its authorization
// request to parPath, authenticated as at the token endpoint, and gets a
// request_uri to send the browser to the authorization endpoint with, in place of
// the parameters. The parameters never pass through the browser, and a
// confidential client's request is known to come from it.

const (
	parPath = "/protocol/openid-connect/ext/par/request"
	// requestURIPrefix starts every request_uri the PAR endpoint gives out (RFC
	// 9126 §2.2); the rest is 256 random bits, base64url.
	requestURIPrefix = "urn:ietf:params:oauth:request_uri:"
	// pushedRequestTTL is how long a request_uri can be used (RFC 9126 §2.2: short,
	// 5 to 600 seconds).
	pushedRequestTTL = 60 * time.Second
)

// requestURIRandom is the random part of a request_uri this server gave out.
var requestURIRandom = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// authParamNames are the authorization request parameters Latchkey reads, and
// all that a pushed request or a request object keeps: nothing else (a
// client_secret in a PAR body above all) is stored.
var authParamNames = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "response_mode",
	"nonce", "code_challenge", "code_challenge_method", "prompt", "max_age", "login_hint"}

// keepAuthParams returns the authorization request parameters of p.
func keepAuthParams(p url.Values) url.Values {
	out := url.Values{}
	for _, k := range authParamNames {
		if p.Has(k) {
			out.Set(k, p.Get(k))
		}
	}
	return out
}

// parResponse is the PAR endpoint's answer (RFC 9126 §2.2).
type parResponse struct {
	RequestURI string `json:"request_uri"`
	ExpiresIn  int    `json:"expires_in"`
}

// par serves the pushed authorization request endpoint (RFC 9126 §2).
func (h *Handler) par(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	form, err := parseForm(w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// §2.1: the client authenticates as it would at the token endpoint.
	client, err := h.authenticateClient(r, form, realm, true)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	corsClient(w, r, client)
	resp, err := h.push(r.Context(), realm, client, form)
	if err != nil {
		var pe *pageError
		if errors.As(err, &pe) {
			err = protocol.New(protocol.InvalidRequest, pe.description)
		}
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

// push validates a pushed request exactly as the authorization endpoint would
// (checkAuthRequest) and stores it.
func (h *Handler) push(ctx context.Context, realm storage.Realm, client storage.Client, form url.Values) (parResponse, error) {
	// §2.1: request_uri cannot be pushed.
	if form.Has("request_uri") {
		return parResponse{}, protocol.New(protocol.InvalidRequest, "request_uri is not allowed in a pushed request")
	}
	if id := form.Get("client_id"); id != "" && id != client.ID {
		return parResponse{}, protocol.New(protocol.InvalidRequest, "client_id is not the authenticated client")
	}
	params := form
	if form.Has("request") {
		// RFC 9126 §3: a request object may be pushed; then only its parameters count.
		var err error
		if params, err = h.requestObject(realm, client, form.Get("request")); err != nil {
			return parResponse{}, err
		}
	}
	params = keepAuthParams(params)
	params.Set("client_id", client.ID)
	if _, err := h.checkAuthRequest(client, params); err != nil {
		return parResponse{}, err
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return parResponse{}, err
	}
	random := make([]byte, 32)
	rand.Read(random)
	secret := base64.RawURLEncoding.EncodeToString(random)
	now := h.now().UTC().Truncate(time.Microsecond)
	err = h.store.CreatePushedRequest(ctx, storage.PushedRequest{
		Hash: pushedRequestHash(secret), Realm: realm.Name, ClientID: client.ID, Params: raw,
		CreatedAt: now, ExpiresAt: now.Add(pushedRequestTTL),
	})
	if err != nil {
		return parResponse{}, err
	}
	return parResponse{RequestURI: requestURIPrefix + secret, ExpiresIn: int(pushedRequestTTL.Seconds())}, nil
}

// pushedRequestHash is what a pushed request is stored by: the hash of its
// request_uri's random part, so a store dump holds no usable request_uri.
func pushedRequestHash(random string) []byte {
	sum := sha256.Sum256([]byte(random))
	return sum[:]
}

// The refusals of a request_uri, on the error page: it cannot say where to go.
var (
	errPushedRequired = &pageError{"Invalid request",
		"This application must start signing in from its own server. Go back to the application and try again.",
		"the client must use pushed authorization requests"}
	errPushedUnknown = &pageError{"This sign-in link has expired",
		"Go back to the application and start signing in again.",
		"request_uri is unknown, expired or used"}
	errRequestAndURI = &pageError{"Invalid request",
		"The application sent a request Latchkey cannot read.",
		"request and request_uri cannot be used together"}
)

// requestParams returns the parameters an authorization request stands for: a
// pushed request's (RFC 9126 §4), a request object's (RFC 9101 §6.3), or the
// query's. pushed says they came from the PAR endpoint.
func (h *Handler) requestParams(r *http.Request, realm storage.Realm, client storage.Client, query url.Values) (url.Values, bool, error) {
	if query.Has("request") && query.Has("request_uri") {
		return nil, false, errRequestAndURI // RFC 9101 §5
	}
	if query.Has("request_uri") {
		params, err := h.usePushedRequest(r.Context(), realm, client, query.Get("request_uri"))
		return params, err == nil, err
	}
	if client.RequirePushedAuthorizationRequests {
		return nil, false, errPushedRequired // RFC 9126 §6
	}
	if query.Has("request") {
		params, err := h.requestObject(realm, client, query.Get("request"))
		return params, false, err
	}
	return query, false, nil
}

// usePushedRequest spends a request_uri the PAR endpoint gave the client, and
// returns its parameters.
func (h *Handler) usePushedRequest(ctx context.Context, realm storage.Realm, client storage.Client, uri string) (url.Values, error) {
	random, ok := strings.CutPrefix(uri, requestURIPrefix)
	if !ok {
		// Only this server's URNs: nothing is fetched from elsewhere.
		return nil, protocol.New(protocol.RequestURINotSupported, "only request_uri values from the PAR endpoint are accepted")
	}
	if !requestURIRandom.MatchString(random) {
		return nil, errPushedUnknown // never given out: no store lookup
	}
	p, err := h.store.UsePushedRequest(ctx, pushedRequestHash(random), h.now())
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrAlreadyUsed) {
		return nil, errPushedUnknown
	}
	if err != nil {
		return nil, err
	}
	// RFC 9126 §4: the request_uri must have been pushed by the client named.
	if p.Realm != realm.Name || p.ClientID != client.ID {
		return nil, errPushedUnknown
	}
	var params url.Values
	if err := json.Unmarshal(p.Params, &params); err != nil {
		return nil, err
	}
	return params, nil
}
