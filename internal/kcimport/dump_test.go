package kcimport

import (
	"encoding/json"
	"os"
	"testing"
)

func TestDump(t *testing.T) {
	f, _ := os.Open("testdata/realm-export.json")
	e, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Translate(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		t.Log(p)
	}
	b, _ := json.MarshalIndent(struct{ Realm, Roles, Clients, Users any }{r.Realm, r.Roles, r.Clients, r.Users}, "", " ")
	t.Log(string(b))
}
