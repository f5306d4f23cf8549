package rs_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/latchkey/latchkey/rs"
)

// An orders API accepts tokens of the realm acme whose audience is the API, and
// requires a scope per route. The API's own confidential client (ID and secret)
// follows the realm's revocation feed and introspects opaque tokens.
func Example() {
	ctx := context.Background()
	v, err := rs.New(ctx, rs.Options{
		Issuer:       "https://id.example.com/realms/acme",
		Audience:     "https://orders.example.com",
		ClientID:     "orders-api",
		ClientSecret: os.Getenv("ORDERS_API_CLIENT_SECRET"),
		// Where clients reach the API (here behind a TLS-terminating proxy): the
		// URL DPoP proofs must name, with the request's path.
		ExternalURL: "https://orders.example.com",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /orders", v.Require("orders:read")(http.HandlerFunc(listOrders)))
	mux.Handle("POST /orders", v.Require("orders:write")(http.HandlerFunc(createOrder)))
	// Roles as Keycloak issues them (realm_access, resource_access), with the roles scope.
	mux.Handle("DELETE /orders/{id}", v.RequireAll(rs.Requirements{
		Scopes: []string{"orders:write"},
		Roles:  []rs.Role{rs.RealmRole("staff"), rs.ClientRole("orders-api", "admin")},
	})(http.HandlerFunc(deleteOrder)))
	log.Fatal(http.ListenAndServe(":8081", mux))
}

func listOrders(w http.ResponseWriter, r *http.Request) {
	c, _ := rs.ClaimsFrom(r.Context())
	fmt.Fprintf(w, "orders of %s, asked by client %s\n", c.Subject, c.ClientID)
	if c.Confirmation != nil {
		// A DPoP-bound token, sent with a proof of its key: a stolen copy of the
		// token alone would have been refused.
		fmt.Fprintf(w, "bound to DPoP key %s\n", c.Confirmation.JKT)
	}
}

func createOrder(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) }

func deleteOrder(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
