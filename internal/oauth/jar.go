package oauth

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// JWT-secured authorization requests (RFC 9101): the request parameter carries
// the authorization request as a JWT the client signed with one of the keys it
// registered (jwks), at the authorization endpoint or in a pushed request.

// invalidRequestObject is the error of a request object that cannot be used (RFC
// 9101 §6.2).
const invalidRequestObject protocol.Code = "invalid_request_object"

// requestObjectAlgs are the algorithms a request object may be signed with: no
// none, no HS* (a shared secret is not a client key), RFC 8725 §3.1.
var requestObjectAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA}

// maxRequestObject bounds a request object before it is parsed.
const maxRequestObject = 16 << 10

// requestObjectType is the typ RFC 9101 §10.8 recommends; plain JWT is accepted,
// a typ naming another kind of JWT is not.
const requestObjectType = "oauth-authz-req+jwt"

// requestObject verifies a request object from the client and returns the
// authorization request parameters it holds, and only those (RFC 9101 §6.3).
func (h *Handler) requestObject(realm storage.Realm, client storage.Client, raw string) (url.Values, error) {
	return parseRequestObject(raw, client, h.tokens.Issuer(realm.Name), h.now())
}

func objectError(description string) *protocol.Error {
	return protocol.New(invalidRequestObject, description)
}

// parseRequestObject checks raw as a request object of client for issuer at now:
// a JWS (never encrypted, RFC 9101 §6.1 aside) signed by one of the client's keys
// with that key's algorithm, from the client (iss), for this server (aud),
// unexpired (exp required, nbf honoured), naming the client (client_id). It
// returns the authorization request parameters among its claims.
func parseRequestObject(raw string, client storage.Client, issuer string, now time.Time) (url.Values, error) {
	if len(raw) > maxRequestObject {
		return nil, objectError("request object too large")
	}
	if strings.Count(raw, ".") == 4 {
		return nil, objectError("encrypted request objects are not supported")
	}
	jws, err := jose.ParseSignedCompact(raw, requestObjectAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, objectError("the request object is malformed or not signed with " + algList())
	}
	header := jws.Signatures[0].Protected
	if typ, _ := header.ExtraHeaders[jose.HeaderType].(string); typ != "" && !strings.EqualFold(typ, requestObjectType) && !strings.EqualFold(typ, "JWT") {
		return nil, objectError("the request object's typ is not " + requestObjectType)
	}
	if len(client.JWKS) == 0 {
		return nil, objectError("the client has registered no keys to sign request objects with")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(client.JWKS, &set); err != nil {
		return nil, err
	}
	var payload []byte
	for _, k := range set.Keys {
		if header.KeyID != "" && k.KeyID != header.KeyID {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !slices.Contains(algsFor(k), header.Algorithm) {
			continue // the algorithm is pinned to the key (RFC 8725 §3.1)
		}
		if p, err := jws.Verify(k.Key); err == nil {
			payload = p
			break
		}
	}
	if payload == nil {
		return nil, objectError("the request object's signature does not verify with the client's keys")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, objectError("the request object's claims are malformed")
	}
	iss, _ := claims["iss"].(string)
	cid, _ := claims["client_id"].(string)
	var aud token.Audience
	if a, err := json.Marshal(claims["aud"]); err == nil {
		json.Unmarshal(a, &aud)
	}
	exp, expOK := numericDate(claims["exp"])
	nbf, nbfOK := numericDate(claims["nbf"])
	switch {
	case iss != client.ID:
		return nil, objectError("the request object's iss must be the client_id")
	case cid != client.ID:
		return nil, objectError("the request object's client_id must be the client_id")
	case !slices.Contains(aud, issuer):
		return nil, objectError("the request object's aud must contain the issuer")
	case !expOK || !now.Before(exp):
		// exp is never stretched (token.Leeway), and is required: a request
		// object is a short-lived capability of the client's.
		return nil, objectError("the request object has no exp or has expired")
	case claims["nbf"] != nil && (!nbfOK || nbf.After(now.Add(token.Leeway))):
		return nil, objectError("the request object is not valid yet")
	case claims["request"] != nil || claims["request_uri"] != nil:
		return nil, objectError("a request object cannot hold request or request_uri") // RFC 9101 §4
	}
	params := url.Values{}
	for _, k := range authParamNames {
		switch v := claims[k].(type) {
		case nil:
		case string:
			params[k] = []string{v}
		case json.Number: // max_age
			params[k] = []string{v.String()}
		default:
			return nil, objectError("the request object's " + k + " must be a string")
		}
	}
	return params, nil
}

// numericDate reads a NumericDate claim (RFC 7519 §2): whole or fractional seconds.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f <= 0 || f > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

func algList() string {
	var s []string
	for _, a := range requestObjectAlgs {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}
