// Package server wires Latchkey's handlers into an http.Server and runs it until
// its context ends, then shuts down gracefully.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Readier reports whether the store can serve requests.
type Readier interface {
	Ready(ctx context.Context) error
}

// Routes is a set of endpoints that adds itself to the server's mux.
type Routes interface {
	Register(mux *http.ServeMux)
}

// Server is Latchkey's HTTP server.
type Server struct {
	log     *slog.Logger
	store   Readier
	handler http.Handler
}

// New builds the server's routes: the health checks and every set given.
func New(log *slog.Logger, store Readier, routes ...Routes) *Server {
	s := &Server{log: log, store: store}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	for _, r := range routes {
		r.Register(mux)
	}
	s.handler = s.logRequests(securityHeaders(mux))
	return s
}

// RequestObserver is told how long each request took, and the ServeMux pattern
// that served it ("" when none did), for metrics.
type RequestObserver interface {
	Request(pattern string, took time.Duration)
}

// Instrument times every request by the route pattern that served it, never by
// its path: the patterns are the fixed set the routes registered.
func (s *Server) Instrument(o RequestObserver) *Server {
	next := s.handler
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		pattern := r.Pattern // set by the mux on this very request
		if r.Method == http.MethodConnect {
			pattern = "" // the mux names a CONNECT redirect by the raw path, not a pattern
		}
		o.Request(pattern, time.Since(start))
	})
	return s
}

// Handler returns the server's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// shutdownGrace is how long in-flight requests get to finish after the context ends.
const shutdownGrace = 10 * time.Second

// Serve answers requests on ln until ctx ends, then stops accepting new ones and
// waits for those in flight.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// healthz answers while the process is up.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the store is reachable and its schema current, and 503
// with Retry-After when not. The store bounds the check by its own timeout.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.store.Ready(r.Context()); err != nil {
		s.log.Warn("not ready", "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "store not ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// nosniff is shared by every response: assigned whole, never appended to.
var nosniff = []string{"nosniff"}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Content-Type-Options"] = nosniff
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection beneath, so a
// streaming handler can flush and set write deadlines when requests are logged.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// logRequests logs each request's method, path and status. Never the query string,
// headers or body: they can carry codes, tokens and credentials.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r) // nothing to log: no wrapper, no clock reads
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.status), slog.Duration("took", time.Since(start)))
	})
}
