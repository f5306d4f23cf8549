package oauth

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/grants"
	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// clientRequest reads a POSTed form and authenticates its client, answering the
// error itself when either fails.
func (h *Handler) clientRequest(w http.ResponseWriter, r *http.Request, realm storage.Realm, allowPublic bool) (url.Values, storage.Client, bool) {
	form, err := parseForm(w, r)
	if err != nil {
		h.writeError(w, r, err)
		return nil, storage.Client{}, false
	}
	client, err := h.authenticateClient(r, form, realm, allowPublic)
	if err != nil {
		h.writeError(w, r, err)
		return nil, storage.Client{}, false
	}
	return form, client, true
}

// required answers invalid_request when a required parameter is missing.
func (h *Handler) required(w http.ResponseWriter, r *http.Request, name, value string) bool {
	if value == "" {
		h.writeError(w, r, protocol.New(InvalidRequest, name+" is required"))
		return false
	}
	return true
}

// token serves the token endpoint.
func (h *Handler) token(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	if hasDPoP(r) {
		// RFC 9449 §8: every answer to a DPoP request, success or error, carries a
		// fresh nonce, so a client never spends a round trip just to learn one.
		w.Header().Set("DPoP-Nonce", h.nonces.Issue(h.now()))
	}
	grantType, resp, err := h.grant(w, r, realm)
	if h.obs != nil {
		h.obs.TokenRequest(grantLabel(grantType), outcome(err))
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// grant runs the phases every grant shares — the form, client authentication,
// the public-client rule and the client-may-use-this-grant check — then the grant
// the request asks for, from the registry. It returns the grant_type sent (once
// the form could be read) and the response or why not.
func (h *Handler) grant(w http.ResponseWriter, r *http.Request, realm storage.Realm) (string, token.Response, error) {
	form, err := parseForm(w, r)
	if err != nil {
		return "", token.Response{}, err
	}
	grantType := form.Get("grant_type")
	client, err := h.authenticateClient(r, form, realm, true)
	if err != nil {
		return grantType, token.Response{}, err
	}
	corsClient(w, r, client)
	if grantType == "" {
		return grantType, token.Response{}, protocol.New(InvalidRequest, "grant_type is required")
	}
	g, spec, ok := h.grants.Get(grantType)
	if !ok {
		// Never echoed: descriptions are logged, and a secret pasted here must not be.
		return grantType, token.Response{}, protocol.New(UnsupportedGrantType, "the grant_type is not supported")
	}
	if spec.Confidential && client.Public() {
		return grantType, token.Response{}, protocol.New(UnauthorizedClient, "public clients cannot use "+grantType)
	}
	if !slices.Contains(client.GrantTypes, grantType) {
		return grantType, token.Response{}, protocol.New(UnauthorizedClient, "client may not use "+grantType)
	}
	// The DPoP phase (RFC 9449 §5) comes once the client is known and may use the
	// grant, so junk requests record no proof in the store.
	var proof *dpop.Proof
	if hasDPoP(r) {
		if proof, err = h.tokenProof(r, realm); err != nil {
			return grantType, token.Response{}, err
		}
	}
	if proof == nil && client.DPoPBoundAccessTokens {
		return grantType, token.Response{}, errDPoPRequired()
	}
	resp, err := g.Token(r.Context(), grants.Request{Realm: realm, Client: client, Form: form, HTTP: r, DPoP: proof})
	if err == nil && !spec.CoreCounts {
		h.tokens.Delivered(client, resp)
	}
	return grantType, resp, err
}

// introspect serves RFC 7662 introspection to authenticated confidential clients.
func (h *Handler) introspect(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	form, client, ok := h.clientRequest(w, r, realm, false)
	tok := form.Get("token")
	if !ok || !h.required(w, r, "token", tok) {
		return
	}
	if ident.Token(tok) != nil {
		h.introspected(false)
		writeJSON(w, http.StatusOK, token.Introspection{}) // what no token is: inactive
		return
	}
	// token_type_hint is only a hint (RFC 7662 §2.1): the token's prefix says what it is.
	res, err := h.tokens.Introspect(r.Context(), realm, client.ID, tok)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.introspected(res.Active)
	writeJSON(w, http.StatusOK, res)
}

func (h *Handler) introspected(active bool) {
	if h.obs != nil {
		h.obs.Introspected(active)
	}
}

// revoke serves RFC 7009 revocation. Public clients identify themselves by client_id.
func (h *Handler) revoke(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	form, client, ok := h.clientRequest(w, r, realm, true)
	if !ok {
		return
	}
	corsClient(w, r, client)
	tok := form.Get("token")
	if !h.required(w, r, "token", tok) {
		return
	}
	// token_type_hint is only a hint (RFC 7009 §2.1): every type is tried anyway.
	// What no token is needs no revoking (RFC 7009 §2.2: an invalid token is no error).
	var err error
	if ident.Token(tok) == nil {
		err = h.tokens.Revoke(r.Context(), realm, client, tok, h.caller(r))
	}
	// token.ErrNotOwner (RFC 7009 §2.1) is answered by wireError.
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}
