package oauth

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/storage"
)

// metadata is the authorization server metadata (RFC 8414 §2), also served as the
// OpenID Provider configuration. Only what is implemented is listed.
type metadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	UserinfoEndpoint                           string   `json:"userinfo_endpoint"`
	EndSessionEndpoint                         string   `json:"end_session_endpoint"`
	CheckSessionIframe                         string   `json:"check_session_iframe"`
	JWKSURI                                    string   `json:"jwks_uri"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	DeviceAuthorizationEndpoint                string   `json:"device_authorization_endpoint"`
	ScopesSupported                            []string `json:"scopes_supported"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	SubjectTypesSupported                      []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported           []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported                            []string `json:"claims_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	RequestParameterSupported                  bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported               bool     `json:"request_uri_parameter_supported"`
	// RFC 9101 §10.5 (request objects) and RFC 9126 §5 (pushed requests).
	RequestObjectSigningAlgValuesSupported     []string `json:"request_object_signing_alg_values_supported"`
	PushedAuthorizationRequestEndpoint         string   `json:"pushed_authorization_request_endpoint"`
	RequirePushedAuthorizationRequests         bool     `json:"require_pushed_authorization_requests"`
	ClaimsParameterSupported                   bool     `json:"claims_parameter_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthMethodsSupported  []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthSigningAlgValues  []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationEndpointAuthSigningAlgValues     []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	// RevocationEventsEndpoint is Latchkey's revocation feed for resource servers.
	RevocationEventsEndpoint string `json:"revocation_events_endpoint,omitempty"`
	// OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens are sent, with sid.
	BackchannelLogoutSupported        bool `json:"backchannel_logout_supported"`
	BackchannelLogoutSessionSupported bool `json:"backchannel_logout_session_supported"`
	// RFC 9449 §5.1: the JWS algorithms accepted for DPoP proofs.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported"`
}

func (h *Handler) discovery(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	clients, err := h.store.ListClients(r.Context(), realm.Name)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var scopes []string
	for _, c := range clients {
		scopes = append(scopes, c.Scopes...)
		scopes = append(scopes, c.EffectiveDefaultScopes()...) // a client may always be granted these
	}
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)

	confidential := []string{methodBasic, methodPost, methodJWT}
	var algs []string
	for _, a := range assertionAlgs {
		algs = append(algs, string(a))
	}
	var objectAlgs []string
	for _, a := range requestObjectAlgs {
		objectAlgs = append(objectAlgs, string(a))
	}
	issuer := h.tokens.Issuer(realm.Name)
	md := metadata{
		Issuer:                           issuer,
		AuthorizationEndpoint:            issuer + authPath,
		TokenEndpoint:                    issuer + tokenPath,
		UserinfoEndpoint:                 issuer + userinfoPath,
		EndSessionEndpoint:               issuer + logoutPath,
		CheckSessionIframe:               issuer + checkSessionPath,
		JWKSURI:                          issuer + certsPath,
		IntrospectionEndpoint:            issuer + introspectPath,
		RevocationEndpoint:               issuer + revokePath,
		DeviceAuthorizationEndpoint:      issuer + deviceAuthPath,
		ScopesSupported:                  append([]string{}, scopes...),
		ResponseTypesSupported:           []string{"code"},
		ResponseModesSupported:           responseModes,
		GrantTypesSupported:              h.grants.Types(),
		CodeChallengeMethodsSupported:    []string{"S256"},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: []string{keys.RS256, keys.ES256, keys.EdDSA},
		ClaimsSupported: []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "at_hash", "azp",
			"name", "given_name", "family_name", "preferred_username", "email", "email_verified",
			"realm_access", "resource_access"},
		AuthorizationResponseIssParameterSupported: true,
		RequestParameterSupported:                  true,
		// Only the PAR endpoint's URNs: no request_uri is fetched from elsewhere.
		RequestURIParameterSupported:               false,
		RequestObjectSigningAlgValuesSupported:     objectAlgs,
		PushedAuthorizationRequestEndpoint:         issuer + parPath,
		TokenEndpointAuthMethodsSupported:          append(confidential, methodNone),
		TokenEndpointAuthSigningAlgValuesSupported: algs,
		IntrospectionEndpointAuthMethodsSupported:  confidential,
		IntrospectionEndpointAuthSigningAlgValues:  algs,
		RevocationEndpointAuthMethodsSupported:     append(confidential, methodNone),
		RevocationEndpointAuthSigningAlgValues:     algs,
		BackchannelLogoutSupported:                 true,
		BackchannelLogoutSessionSupported:          true,
		DPoPSigningAlgValuesSupported:              dpop.SigningAlgorithms,
	}
	if h.events != nil {
		md.RevocationEventsEndpoint = issuer + revocationEventsPath
	}
	publicJSON(w, h.keys.Policy().JWKSMaxAge.Seconds())
	writeBody(w, md)
}

// certs serves the realm's JWKS: public keys only, cacheable for one JWKS lifetime.
func (h *Handler) certs(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	alg := realm.SigningAlg
	if alg == "" {
		alg = keys.ES256
	}
	// Make sure the realm has its keys before anyone asks it to sign: its access-token
	// key, and an RS256 key for ID tokens, which every OP must offer (OIDC Core §15.1).
	for _, a := range []string{alg, keys.RS256} {
		if _, err := h.keys.Signer(r.Context(), realm.Name, a); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	jwks, err := h.keys.JWKS(r.Context(), realm.Name)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	publicJSON(w, h.keys.Policy().JWKSMaxAge.Seconds())
	w.Header().Set("Content-Length", strconv.Itoa(len(jwks)))
	w.WriteHeader(http.StatusOK)
	w.Write(jwks)
}

// publicJSON sets the headers of a public, cacheable JSON document that browsers
// on any origin may read.
func publicJSON(w http.ResponseWriter, maxAge float64) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(maxAge)))
	w.Header().Set("Access-Control-Allow-Origin", "*")
}
