package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// deviceSeed adds a TV app that signs in with the device authorization grant.
var deviceSeed = strings.Replace(defaultSeed, "    users:\n", `      - id: tv
        name: Living Room TV
        grant_types: [urn:ietf:params:oauth:grant-type:device_code, refresh_token]
        scopes: [openid, profile, offline_access]
    users:
`, 1)

// approveDevice walks the verification page as a browser: the code the device
// shows, the sign-in, then Approve or Deny.
func approveDevice(t *testing.T, b *browser, verificationURI, userCode, decision string) page {
	t.Helper()
	p := b.get(verificationURI)
	if p.status != 200 || !strings.Contains(p.body, `name="user_code"`) {
		t.Fatalf("verification page = %d\n%s", p.status, p.body)
	}
	p = b.do(b.loginRequest(p, verificationURI, "user_code", userCode))
	if strings.Contains(p.body, `name="password"`) {
		p = b.do(b.loginRequest(p, verificationURI, "username", "alice", "password", alicePass))
	}
	if p.status != 200 || !strings.Contains(p.body, "Living Room TV") || !strings.Contains(p.body, `value="approve"`) {
		t.Fatalf("confirmation = %d\n%s", p.status, p.body)
	}
	return b.do(b.loginRequest(p, verificationURI, "decision", decision))
}

// x/oauth2's device flow against the real server: DeviceAuth, the user
// approving in a browser, DeviceAccessToken polling; the device's refresh token
// then refreshes. A denied device gets access_denied.
func TestDeviceFlow_XOAuth2(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{seed: deviceSeed, db: db})
		iss := s.issuer("acme")
		conf := &oauth2.Config{
			ClientID: "tv",
			Endpoint: oauth2.Endpoint{
				DeviceAuthURL: iss + "/protocol/openid-connect/auth/device",
				TokenURL:      s.tokenURL(),
				AuthStyle:     oauth2.AuthStyleInParams,
			},
			Scopes: []string{"openid", "profile"},
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		da, err := conf.DeviceAuth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if da.VerificationURI != iss+"/device" || !strings.HasSuffix(da.VerificationURIComplete, "?user_code="+da.UserCode) ||
			da.Interval != 5 || da.Expiry.IsZero() {
			t.Fatalf("device authorization %+v", da)
		}
		b := newBrowser(t)
		if p := approveDevice(t, b, da.VerificationURIComplete, da.UserCode, "approve"); p.status != 200 || !strings.Contains(p.body, "Device connected") {
			t.Fatalf("after approving = %d\n%s", p.status, p.body)
		}
		tok, err := conf.DeviceAccessToken(ctx, da)
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Extra("id_token") == nil {
			t.Fatalf("token %+v", tok)
		}
		if r := s.introspect(t, svcBasic, tok.AccessToken); r.body["active"] != true || r.str("client_id") != "tv" || r.str("username") != "alice" {
			t.Fatalf("introspection = %d %s", r.status, r.raw)
		}
		// The device refreshes with the library's TokenSource.
		tok.Expiry = time.Now().Add(-time.Minute)
		next, err := conf.TokenSource(ctx, tok).Token()
		if err != nil {
			t.Fatal(err)
		}
		if next.AccessToken == tok.AccessToken || next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken {
			t.Fatalf("refresh did not rotate: %+v", next)
		}

		// Denied: the poll ends with access_denied.
		da, err = conf.DeviceAuth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p := approveDevice(t, b, da.VerificationURI, da.UserCode, "deny"); !strings.Contains(p.body, "Request denied") {
			t.Fatalf("after denying = %d\n%s", p.status, p.body)
		}
		_, err = conf.DeviceAccessToken(ctx, da)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "access_denied" {
			t.Fatalf("denied device's poll = %v", err)
		}
	})
}
