// Package bff owns the backend-for-frontend: it signs a browser in at a Latchkey (or any OIDC)
// issuer as a confidential client, keeps the tokens server side in sealed session records, and
// proxies same-origin API calls with the access token attached, so no token reaches the browser.
//
// Embedding it in a Go server:
//
//	h, err := bff.New(ctx, bff.Config{
//		Issuer:       "https://id.example.com/realms/main",
//		ClientID:     "web",
//		ClientSecret: secret,
//		ExternalURL:  "https://app.example.com",
//		APIs:         []bff.API{{Prefix: "/api", Upstream: apiURL}},
//		App:          http.FileServer(http.Dir("dist")),
//		Key:          key, // 32 random bytes, the same on every instance
//	})
//	if err != nil { ... }
//	http.ListenAndServe(":8443", h)
//
// The SPA calls GET /bff/login?returnTo=/path to sign in, GET /bff/user and GET /bff/session to
// learn who is signed in, POST /bff/logout (with X-CSRF: 1) to sign out, and its API prefixes
// with X-CSRF: 1.
package bff
