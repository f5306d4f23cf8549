package rs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// introspected checks an opaque access token at the issuer's introspection endpoint
// (RFC 7662) with the API's client credentials. An answer, active or not, is reused
// for IntrospectTTL, never past the token's exp: opaque tokens cost one call to the
// issuer per token every few seconds, not one per request.
func (v *Validator) introspected(ctx context.Context, tok string) (*Claims, error) {
	if v.endpoints.Introspection == "" || v.o.ClientID == "" {
		return nil, invalid("opaque tokens are not accepted here")
	}
	now := v.o.Now()
	k := tokenKey(tok)
	if e, ok := v.introspect.get(k, now); ok {
		if e.claims == nil {
			return nil, invalid("token not active")
		}
		return e.claims, nil
	}
	w, err := v.callIntrospection(ctx, tok)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection: %v", ErrUnavailable, err)
	}
	until := now.Add(v.o.IntrospectTTL)
	if w.Active == nil || !*w.Active {
		v.introspect.put(k, cacheEntry{until: until})
		return nil, invalid("token not active")
	}
	c, err := w.claims("")
	if err == nil {
		err = v.checkClaims(c, now)
	}
	if err != nil {
		v.introspect.put(k, cacheEntry{until: until})
		return nil, err
	}
	if c.Expiry.Before(until) {
		until = c.Expiry
	}
	v.introspect.put(k, cacheEntry{claims: c, until: until})
	return c, nil
}

func (v *Validator) callIntrospection(ctx context.Context, tok string) (*wireClaims, error) {
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, "POST", v.endpoints.Introspection, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(v.o.ClientID), url.QueryEscape(v.o.ClientSecret)) // RFC 6749 §2.3.1
	res, err := v.o.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", res.Status)
	}
	var w wireClaims
	if err := json.NewDecoder(io.LimitReader(res.Body, maxDocument)).Decode(&w); err != nil {
		return nil, err
	}
	return &w, nil
}
