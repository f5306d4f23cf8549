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
}

func createOrder(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) }

func deleteOrder(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
