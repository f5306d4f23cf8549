package bff_test

import (
	"context"
	"log"
	"net/http"
	"net/url"
	"os"

	"github.com/latchkey/latchkey/bff"
)

// A Go server that serves its SPA and API through the BFF: the browser only ever
// holds the opaque session cookie.
func Example() {
	key, err := os.ReadFile("/etc/app/bff.key") // 32 random bytes, the same on every instance
	if err != nil {
		log.Print(err)
		return
	}
	api, _ := url.Parse("http://127.0.0.1:8081") // /api/orders -> http://127.0.0.1:8081/orders
	h, err := bff.New(context.Background(), bff.Config{
		Issuer:       "https://id.example.com/realms/main",
		ClientID:     "web",
		ClientSecret: os.Getenv("BFF_CLIENT_SECRET"),
		ExternalURL:  "https://app.example.com",
		APIs:         []bff.API{{Prefix: "/api", Upstream: api}},
		App:          http.FileServer(http.Dir("dist")),
		Key:          key,
	})
	if err != nil {
		log.Print(err)
		return
	}
	log.Fatal(http.ListenAndServeTLS(":8443", "cert.pem", "key.pem", h))
}
