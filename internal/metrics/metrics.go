// Package metrics owns Latchkey's Prometheus collectors, registered on a registry
// the caller passes in (never the global default one).
//
// Every label value comes from a fixed set known here: route patterns the server
// registered, grant types, RFC 6749 error codes, audit event types, store
// operation names. Anything else collapses into one "other" (or "unmatched")
// value, so no request, however crafted, can add a series. No label ever holds a
// user, client, address, secret or token.
//
// The counters on request paths are resolved once, at construction, into plain
// maps that are only read afterwards: counting costs a map lookup and an atomic
// add, with no lock and no allocation.
package metrics

import (
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	grantspkg "github.com/latchkey/latchkey/internal/grants"
)

const namespace = "latchkey"

// Label values outside every fixed set.
const (
	other     = "other"
	unmatched = "unmatched"
)

// Grant types a token request is counted under, from internal/grants' table;
// "none" when grant_type is missing, "unsupported" for any other value.
var grants = append(grantspkg.Types(), "none", "unsupported")

// Outcomes of a token request: success or an RFC 6749 §5.2 error code (and the
// codes Latchkey adds: RFC 8707's invalid_target, temporarily_unavailable).
var outcomes = []string{"success", "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope", "invalid_target", "server_error", "temporarily_unavailable", "not_found", other}

// Kinds of token issued.
var tokenKinds = []string{"access_jwt", "access_opaque", "refresh", "id"}

// Login results: the password was right, wrong (or the account unusable), or
// not checked because the account or address is locked.
var loginResults = []string{"success", "failure", "throttled"}

// Limiters whose lockouts are counted.
var limiters = []string{"login", "client_auth"}

// maxRoutes bounds the route label: a server registers far fewer patterns.
const maxRoutes = 64

// Metrics holds the collectors. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	tokenRequests  map[[2]string]prometheus.Counter // grant, outcome
	issued         map[string]prometheus.Counter
	rotations      prometheus.Counter
	retryServed    prometheus.Counter
	introspections [2]prometheus.Counter // inactive, active
	logins         map[string]prometheus.Counter
	lockouts       map[string]prometheus.Counter
	clientThrottle prometheus.Counter

	audit        map[string]prometheus.Counter
	reuse        map[string]prometheus.Counter
	revocations  map[[2]string]prometheus.Counter // kind, source
	storeLatency *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec

	latency *prometheus.HistogramVec
	routeMu sync.Mutex // serialises adding a route; reading needs no lock
	routes  atomic.Pointer[map[string]prometheus.Observer]

	started    time.Time
	denySynced atomic.Int64 // unix nanoseconds of the deny-list's last catch-up or reload
}

// New makes the collectors and registers them, with the Go runtime and process
// collectors, on reg. now is the clock the age gauges read.
func New(reg *prometheus.Registry, now func() time.Time) *Metrics {
	m := &Metrics{reg: reg, now: now, started: now()}
	f := factory{reg}

	requests := f.counterVec("token_requests_total", "Token endpoint requests by grant type and outcome (success or the RFC 6749 error code).", "grant", "outcome")
	m.tokenRequests = map[[2]string]prometheus.Counter{}
	for _, g := range grants {
		for _, o := range outcomes {
			m.tokenRequests[[2]string{g, o}] = requests.WithLabelValues(g, o)
		}
	}
	m.issued = f.each("tokens_issued_total", "Tokens handed out by the token endpoint, by kind (a retried refresh answered again is not counted).", "kind", tokenKinds)
	m.rotations = f.counter("refresh_rotations_total", "Refresh tokens rotated: spent for a successor.")
	m.retryServed = f.counter("refresh_retry_window_hits_total", "Spent refresh tokens presented again within their retry window and answered with the first response.")
	intro := f.counterVec("introspections_total", "Introspection answers by result.", "result")
	m.introspections = [2]prometheus.Counter{intro.WithLabelValues("inactive"), intro.WithLabelValues("active")}
	m.logins = f.each("logins_total", "Login form submissions by result: success, failure, or throttled (refused unchecked while locked).", "result", loginResults)
	m.lockouts = f.each("lockouts_total", "Failures that locked an account, client or address, by limiter.", "limiter", limiters)
	m.clientThrottle = f.counter("client_auth_throttled_total", "Client authentication attempts refused with 429 while the client or address is locked.")

	m.audit = f.each("audit_events_total", "Audit events stored, by type.", "type", append(auditTypes(), other))
	m.reuse = f.each("reuse_detections_total", "Replays detected, each revoking a grant: a rotated refresh token outside its retry window, or a used authorization code.", "kind", []string{"refresh_token", "authorization_code"})
	rev := f.counterVec("revocations_total", "Revocations by what was revoked and who or what revoked it.", "kind", "source")
	m.revocations = map[[2]string]prometheus.Counter{}
	for _, k := range revocationKinds {
		for _, s := range revocationSources {
			m.revocations[[2]string{k, s}] = rev.WithLabelValues(k, s)
		}
	}
	m.storeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "store_operation_duration_seconds",
		Help: "Store call latency by operation.", Buckets: storeBuckets}, []string{"operation"})
	m.storeErrors = f.counterVec("store_errors_total", "Store calls that failed, by operation and error (unavailable: timed out or unreachable; other). Not found, conflicts and the like are answers, not errors.", "operation", "error")
	reg.MustRegister(m.storeLatency)

	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "http_request_duration_seconds",
		Help: "HTTP request latency by the route pattern that served it (\"unmatched\" when none did).", Buckets: httpBuckets}, []string{"route"})
	reg.MustRegister(m.latency)
	routes := map[string]prometheus.Observer{unmatched: m.latency.WithLabelValues(unmatched)}
	m.routes.Store(&routes)

	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "denylist_sync_age_seconds",
		Help: "Seconds since the deny-list was last brought up to date: the change feed read to its end, or the list reloaded (since start, before either)."},
		func() float64 {
			last := m.started
			if ns := m.denySynced.Load(); ns != 0 {
				last = time.Unix(0, ns)
			}
			return m.now().Sub(last).Seconds()
		}))
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Seconds from 50 µs (an in-memory answer) to 5 s (past the store timeout).
var httpBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Seconds from 25 µs (an SQLite read in cache) to the default 3 s store timeout.
var storeBuckets = []float64{.000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 3}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// TokenRequest counts a token endpoint request. grant and outcome outside their
// fixed sets are counted as "unsupported" and "other".
func (m *Metrics) TokenRequest(grant, outcome string) {
	c, ok := m.tokenRequests[[2]string{grant, outcome}]
	if !ok {
		if !m.known(grant) {
			grant = "unsupported"
		}
		if c, ok = m.tokenRequests[[2]string{grant, outcome}]; !ok {
			c = m.tokenRequests[[2]string{grant, other}]
		}
	}
	c.Inc()
}

func (m *Metrics) known(grant string) bool {
	_, ok := m.tokenRequests[[2]string{grant, "success"}]
	return ok
}

// Issued counts a token handed out; kind is access_jwt, access_opaque, refresh or id.
func (m *Metrics) Issued(kind string) {
	if c, ok := m.issued[kind]; ok {
		c.Inc()
	}
}

// Rotated counts a refresh token rotation.
func (m *Metrics) Rotated() { m.rotations.Inc() }

// RetryServed counts a spent refresh token answered again within its retry window.
func (m *Metrics) RetryServed() { m.retryServed.Inc() }

// Introspected counts an introspection answer.
func (m *Metrics) Introspected(active bool) {
	if active {
		m.introspections[1].Inc()
		return
	}
	m.introspections[0].Inc()
}

// Login counts a login form submission: success, failure or throttled.
func (m *Metrics) Login(result string) {
	if c, ok := m.logins[result]; ok {
		c.Inc()
	}
}

// Lockout counts a failure that locked; limiter is login or client_auth.
func (m *Metrics) Lockout(limiter string) {
	if c, ok := m.lockouts[limiter]; ok {
		c.Inc()
	}
}

// ClientAuthThrottled counts a client authentication refused with 429.
func (m *Metrics) ClientAuthThrottled() { m.clientThrottle.Inc() }

// Request observes how long a request took. pattern is the ServeMux pattern
// that served it, "" when none did. Only patterns the mux registered reach
// here; past maxRoutes of them, the rest are "unmatched" all the same.
func (m *Metrics) Request(pattern string, took time.Duration) {
	if pattern == "" {
		pattern = unmatched
	}
	o, ok := (*m.routes.Load())[pattern]
	if !ok {
		o = m.addRoute(pattern)
	}
	o.Observe(took.Seconds())
}

// addRoute makes a route's histogram the first time the route is seen, copying
// the map so readers never lock.
func (m *Metrics) addRoute(pattern string) prometheus.Observer {
	m.routeMu.Lock()
	defer m.routeMu.Unlock()
	old := *m.routes.Load()
	if o, ok := old[pattern]; ok {
		return o
	}
	if len(old) >= maxRoutes {
		return old[unmatched]
	}
	routes := maps.Clone(old)
	routes[pattern] = m.latency.WithLabelValues(pattern)
	m.routes.Store(&routes)
	return routes[pattern]
}

// DenyListSynced records a successful deny-list sync.
func (m *Metrics) DenyListSynced() { m.denySynced.Store(m.now().UnixNano()) }

// WatchDenyList exports the deny-list's size, read at each scrape.
func (m *Metrics) WatchDenyList(size func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "denylist_entries",
		Help: "Revoked access tokens held in the in-memory deny-list."}, func() float64 { return float64(size()) }))
}

// SigningKey is a key that signs now.
type SigningKey struct {
	Realm, Alg string
	CreatedAt  time.Time
}

// WatchSigningKeys exports the age of each realm's current signing key per
// algorithm, read at each scrape. The realm label is bounded by the realms
// operators create: keys exist only for realms in the store.
func (m *Metrics) WatchSigningKeys(current func() []SigningKey) {
	m.reg.MustRegister(&keyAges{m: m, current: current, desc: prometheus.NewDesc(namespace+"_signing_key_age_seconds",
		"Age of the key currently signing, per realm and algorithm (realms whose keys this instance has loaded).",
		[]string{"realm", "alg"}, nil)})
}

type keyAges struct {
	m       *Metrics
	current func() []SigningKey
	desc    *prometheus.Desc
}

func (k *keyAges) Describe(ch chan<- *prometheus.Desc) { ch <- k.desc }

func (k *keyAges) Collect(ch chan<- prometheus.Metric) {
	now := k.m.now()
	for _, key := range k.current() {
		ch <- prometheus.MustNewConstMetric(k.desc, prometheus.GaugeValue, now.Sub(key.CreatedAt).Seconds(), key.Realm, key.Alg)
	}
}

// factory makes collectors in the namespace and registers them.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

// each makes a counter per value of one label, each present (at 0) from the start.
func (f factory) each(name, help, label string, values []string) map[string]prometheus.Counter {
	vec := f.counterVec(name, help, label)
	out := make(map[string]prometheus.Counter, len(values))
	for _, v := range values {
		out[v] = vec.WithLabelValues(v)
	}
	return out
}
