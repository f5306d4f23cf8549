package client_test

import (
	"context"
	"errors"
	"log"

	"github.com/latchkey/latchkey/client"
	"golang.org/x/oauth2"
)

// A confidential web client keeps its refresh token in a file and calls an API
// with whatever access token is current. The first refresh token comes from the
// authorization code flow (oauth2.Config.Exchange) and goes into the store once.
func Example() {
	ctx := context.Background()
	store := client.FileStore{Path: "/var/lib/myapp/token.json"}
	// After signing the user in:  store.Save(ctx, tokFromExchange)

	src, err := client.New(ctx, client.Config{
		Issuer:       "https://login.example.com/realms/acme", // or TokenURL
		ClientID:     "web",
		ClientSecret: "the-client-secret-from-your-vault",
		Store:        store,
	})
	if err != nil {
		log.Fatal(err)
	}
	api := oauth2.NewClient(ctx, src) // attaches the current access token

	res, err := api.Get("https://api.example.com/orders")
	switch {
	case errors.Is(err, client.ErrInvalidGrant), errors.Is(err, client.ErrAnswerLost), errors.Is(err, client.ErrNoRefreshToken):
		// The grant is over: send the user through sign-in again.
	case errors.Is(err, client.ErrNotSaved):
		// Nothing was handed out; fix the store (disk full?) and try again: the
		// next call saves the rotated token it is holding.
	case err != nil:
		// A network or server problem: try again later with the same Source.
	default:
		defer res.Body.Close()
	}
}
