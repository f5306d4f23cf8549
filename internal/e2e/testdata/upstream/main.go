// Command upstream is the stand-in API of the gate's measurement: it answers every
// request with a small JSON body naming the caller the gate forwarded.
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	log.Fatal(http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"sub":"` + r.Header.Get("X-Auth-Subject") + `"}`))
	})))
}
