package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const key = "q7ZxMx2V1t0c1L1n7rRrj1h0s7oY2m7o3N8l8c9s0aA="

func TestResolveIssuerRules(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		in      Serve
		wantURL string
		wantErr string
	}{
		{"dev defaults to loopback", Serve{Dev: true, DataDir: dir}, "http://127.0.0.1:8080", ""},
		{"dev on another loopback port", Serve{Dev: true, DataDir: dir, Addr: "localhost:9000"}, "http://localhost:9000", ""},
		{"dev refuses a public address", Serve{Dev: true, DataDir: dir, Addr: "0.0.0.0:8080"}, "", "not a loopback address"},
		{"https issuer", Serve{BaseURL: "https://id.example.com/", MasterKey: key, DataDir: dir}, "https://id.example.com", ""},
		{"https issuer under a path", Serve{BaseURL: "https://example.com/auth", MasterKey: key, DataDir: dir}, "https://example.com/auth", ""},
		{"plain HTTP outside dev", Serve{BaseURL: "http://id.example.com", MasterKey: key, DataDir: dir}, "", "must be https://"},
		{"plain HTTP on loopback with the flag", Serve{BaseURL: "http://127.0.0.1:8080", InsecureHTTP: true, MasterKey: key, DataDir: dir}, "http://127.0.0.1:8080", ""},
		{"plain HTTP off loopback even with the flag", Serve{BaseURL: "http://10.0.0.5", InsecureHTTP: true, MasterKey: key, DataDir: dir}, "", "must be https://"},
		{"base URL with a query", Serve{BaseURL: "https://id.example.com/?x=1", MasterKey: key, DataDir: dir}, "", "without query"},
		{"no base URL outside dev", Serve{MasterKey: key, DataDir: dir}, "", "--base-url is required"},
		{"no master key outside dev", Serve{BaseURL: "https://id.example.com", DataDir: dir}, "", "no master key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := tc.in.Resolve()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || o.BaseURL != tc.wantURL {
				t.Fatalf("BaseURL = %q, %v; want %q", o.BaseURL, err, tc.wantURL)
			}
			if o.Issuer("acme") != tc.wantURL+"/realms/acme" {
				t.Fatalf("Issuer = %q", o.Issuer("acme"))
			}
		})
	}
}

func TestResolveDBPicksTheBackend(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ db, backend, dsn string }{
		{"", "sqlite", filepath.Join(dir, "latchkey.db")},
		{"sqlite:" + filepath.Join(dir, "x.db"), "sqlite", filepath.Join(dir, "x.db")},
		{filepath.Join(dir, "y.db"), "sqlite", filepath.Join(dir, "y.db")},
		{"postgres://u@h/db", "postgres", "postgres://u@h/db"},
		{"postgresql://u@h/db", "postgres", "postgresql://u@h/db"},
	} {
		backend, dsn, _, err := ResolveDB(tc.db, dir, false)
		if err != nil || backend != tc.backend || dsn != tc.dsn {
			t.Errorf("ResolveDB(%q) = %s %s %v; want %s %s", tc.db, backend, dsn, err, tc.backend, tc.dsn)
		}
	}
}

func TestDevModeCreatesAndReusesTheMasterKey(t *testing.T) {
	dir := t.TempDir()
	o1, err := Serve{Dev: true, DataDir: dir}.Resolve()
	if err != nil || !o1.MasterKeyCreated {
		t.Fatalf("first dev start: %v, created %v", err, o1.MasterKeyCreated)
	}
	o2, err := Serve{Dev: true, DataDir: dir}.Resolve()
	if err != nil || o2.MasterKeyCreated || o2.MasterKey.ID() != o1.MasterKey.ID() {
		t.Fatalf("second dev start: %v, created %v", err, o2.MasterKeyCreated)
	}
}

func TestResolveTrustedProxies(t *testing.T) {
	dir := t.TempDir()
	o, err := Serve{Dev: true, DataDir: dir, TrustedProxies: "10.0.0.0/8, 192.0.2.1"}.Resolve()
	if err != nil || len(o.TrustedProxies) != 2 || o.TrustedProxies[1].String() != "192.0.2.1/32" {
		t.Fatalf("TrustedProxies = %v, %v", o.TrustedProxies, err)
	}
	if o, err := (Serve{Dev: true, DataDir: dir}).Resolve(); err != nil || o.TrustedProxies != nil {
		t.Fatalf("no --trusted-proxies: %v, %v", o.TrustedProxies, err)
	}
	if _, err := (Serve{Dev: true, DataDir: dir, TrustedProxies: "10.0.0.0/8,nope"}).Resolve(); err == nil ||
		!strings.Contains(err.Error(), `--trusted-proxies: "nope" is not an IP address or CIDR`) {
		t.Fatalf("err = %v", err)
	}
}

func TestResolveStoreTimeout(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", storage.DefaultTimeout, false},
		{"1s", time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"0s", 0, true},
		{"-1s", 0, true},
		{"3", 0, true},
	} {
		o, err := Serve{Dev: true, DataDir: dir, StoreTimeout: tc.in}.Resolve()
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "--store-timeout") {
				t.Errorf("--store-timeout %q: err = %v, want a --store-timeout error", tc.in, err)
			}
			continue
		}
		if err != nil || o.StoreTimeout != tc.want {
			t.Errorf("--store-timeout %q = %v, %v; want %v", tc.in, o.StoreTimeout, err, tc.want)
		}
	}
}

func TestResolveLogFormat(t *testing.T) {
	dir := t.TempDir()
	for in, want := range map[string]string{"": "text", "text": "text", "json": "json", "JSON": "json", "yaml": ""} {
		o, err := Serve{Dev: true, DataDir: dir, LogFormat: in}.Resolve()
		if want == "" {
			if err == nil || !strings.Contains(err.Error(), "--log-format") {
				t.Errorf("--log-format %q: err = %v, want a --log-format error", in, err)
			}
			continue
		}
		if err != nil || o.LogFormat != want {
			t.Errorf("--log-format %q = %q, %v; want %q", in, o.LogFormat, err, want)
		}
	}
}

func TestResolveMetricsAddr(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, addr, want, wantErr string }{
		{"off by default", "", "", ""},
		{"its own port", "127.0.0.1:9090", "127.0.0.1:9090", ""},
		{"not host:port", "9090", "", "--metrics-addr"},
		{"the public listener", "127.0.0.1:8080", "", "must differ from --addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Serve{Dev: true, DataDir: dir, MetricsAddr: tc.addr}.Resolve()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || o.MetricsAddr != tc.want {
				t.Fatalf("MetricsAddr = %q, %v; want %q", o.MetricsAddr, err, tc.want)
			}
		})
	}
}
