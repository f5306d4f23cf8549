package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

type fakeReady struct{ err error }

func (f fakeReady) Ready(context.Context) error { return f.err }

func get(t *testing.T, h http.Handler, path string) (*http.Response, map[string]string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	var body map[string]string
	json.Unmarshal(rec.Body.Bytes(), &body)
	return rec.Result(), body
}

func TestHealthAndReadiness(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	up := New(log, fakeReady{}).Handler()
	down := New(log, fakeReady{err: errors.New("connection refused")}).Handler()

	for _, tc := range []struct {
		h          http.Handler
		path       string
		wantStatus int
		wantBody   string
	}{
		{up, "/healthz", 200, "ok"},
		{down, "/healthz", 200, "ok"}, // the process is up even when the store is not
		{up, "/readyz", 200, "ready"},
		{down, "/readyz", 503, "unavailable"},
	} {
		res, body := get(t, tc.h, tc.path)
		if res.StatusCode != tc.wantStatus || body["status"] != tc.wantBody {
			t.Errorf("%s = %d %v, want %d %s", tc.path, res.StatusCode, body, tc.wantStatus, tc.wantBody)
		}
		if res.Header.Get("Content-Type") != "application/json" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s headers %v", tc.path, res.Header)
		}
		if got := res.Header.Get("Retry-After"); (tc.wantStatus == 503) != (got != "") {
			t.Errorf("%s = %d with Retry-After %q", tc.path, res.StatusCode, got)
		}
	}
	if res, _ := get(t, up, "/nope"); res.StatusCode != 404 {
		t.Errorf("unknown path = %d", res.StatusCode)
	}
}

func TestServeStopsWhenTheContextEnds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- New(slog.New(slog.NewTextHandler(io.Discard, nil)), fakeReady{}).Serve(ctx, ln) }()

	res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /healthz = %v, %v", res, err)
	}
	res.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after a clean shutdown", err)
		}
	case <-time.After(shutdownGrace + 5*time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

type seenRoutes []string

func (s *seenRoutes) Request(pattern string, took time.Duration) { *s = append(*s, pattern) }

type routeSet struct{}

func (routeSet) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /realms/{realm}/token", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/realms/{realm}/dir/", func(w http.ResponseWriter, r *http.Request) {})
}

// Requests are timed by the pattern that served them, never by their path.
func TestInstrument_ByRoutePatternNeverPath(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var seen seenRoutes
	h := New(log, fakeReady{}, routeSet{}).Instrument(&seen).Handler()
	for _, c := range []struct{ method, target, want string }{
		{"POST", "/realms/acme/token", "POST /realms/{realm}/token"},
		{"POST", "/realms/secret-looking-realm/token", "POST /realms/{realm}/token"},
		{"GET", "/realms/acme/token", ""},                   // method not allowed
		{"GET", "/no/such/lk_at_token", ""},                 // not found
		{"GET", "/realms/acme/dir", "/realms/{realm}/dir/"}, // redirected to the pattern
		{"GET", "/healthz", "GET /healthz"},
		{"CONNECT", "/realms/x/dir", ""}, // the mux names this redirect by its raw path
	} {
		seen = nil
		req := httptest.NewRequest(c.method, c.target, nil)
		if c.method == "CONNECT" {
			req.URL.Path, req.RequestURI = c.target, c.target
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		if len(seen) != 1 || seen[0] != c.want {
			t.Errorf("%s %s timed as %q, want %q", c.method, c.target, seen, c.want)
		}
	}
}
