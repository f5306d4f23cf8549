package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run measured. Its JSON form is the one `latchkey bench --json`
// prints; the table shows the same fields.
type Report struct {
	Scenario     string           `json:"scenario"`
	Label        string           `json:"label"`
	Connections  int              `json:"connections"`
	Rate         float64          `json:"rate"` // requests/s asked for; 0 = closed loop
	DurationS    float64          `json:"duration_s"`
	Requests     int64            `json:"requests"` // measured phase only
	OK           int64            `json:"ok"`
	ErrorsByKind map[string]int64 `json:"errors_by_kind"`
	RPS          float64          `json:"rps"`
	LatencyMS    Latency          `json:"latency_ms"`
	// WarmupErrors counts failures during warm-up, which the figures above leave
	// out (a refresh chain that broke then is missing from the measured phase).
	WarmupErrors int64 `json:"warmup_errors,omitempty"`
	*Server
}

// Latency is in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Server is the server process's usage over the measured phase (only with --pid).
type Server struct {
	CPUS       float64 `json:"server_cpu_s"`
	RPSPerCPUS float64 `json:"rps_per_cpu_s"` // ok requests per CPU-second of the server
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	HWMRSSMiB  float64 `json:"hwm_rss_mib"`
}

func newReport(cfg Config, elapsed time.Duration, measured, warm *tally, u *Usage) *Report {
	r := &Report{
		Scenario: cfg.Scenario, Label: cfg.Label, Connections: cfg.Connections, Rate: cfg.Rate,
		DurationS: round(elapsed.Seconds(), 3), Requests: measured.requests.Load(), OK: measured.ok.Load(),
		ErrorsByKind: measured.errors,
		WarmupErrors: warm.requests.Load() - warm.ok.Load(),
	}
	if elapsed > 0 {
		r.RPS = round(float64(r.Requests)/elapsed.Seconds(), 1)
	}
	h := &measured.latency
	r.LatencyMS = Latency{P50: ms(h.Percentile(0.50)), P90: ms(h.Percentile(0.90)), P99: ms(h.Percentile(0.99)), Max: ms(h.Max())}
	if u != nil {
		// The kernel updates VmHWM lazily (RSS counters are batched per thread), so a
		// sampled VmRSS can read a little above the VmHWM read after it: the high-water
		// mark is at least the highest sample.
		r.Server = &Server{CPUS: round(u.CPU.Seconds(), 2), PeakRSSMiB: mib(u.PeakRSS), HWMRSSMiB: mib(max(u.HWM, u.PeakRSS))}
		if u.CPU > 0 {
			r.RPSPerCPUS = round(float64(r.OK)/u.CPU.Seconds(), 1)
		}
	}
	return r
}

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func mib(b uint64) float64 { return round(float64(b)/(1<<20), 1) }

// WriteJSON writes the report as one line of JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(r)
}

// WriteTable writes the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("scenario", "%s", r.Scenario)
	if r.Label != "" {
		row("label", "%s", r.Label)
	}
	loop := "closed loop"
	if r.Rate > 0 {
		loop = fmt.Sprintf("open loop at %g requests/s", r.Rate)
	}
	row("load", "%d connections, %s", r.Connections, loop)
	row("duration", "%.1f s", r.DurationS)
	row("requests", "%d (%d ok)", r.Requests, r.OK)
	row("errors", "%s", errorList(r.ErrorsByKind))
	if r.WarmupErrors > 0 {
		row("warm-up errors", "%d (not counted above)", r.WarmupErrors)
	}
	row("throughput", "%.1f requests/s", r.RPS)
	l := r.LatencyMS
	row("latency", "p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms", l.P50, l.P90, l.P99, l.Max)
	if r.Server != nil {
		row("server cpu", "%.2f s (%.1f ok requests per cpu-second)", r.CPUS, r.RPSPerCPUS)
		row("server memory", "peak RSS %.1f MiB, high-water mark %.1f MiB", r.PeakRSSMiB, r.HWMRSSMiB)
	}
	return tw.Flush()
}

func errorList(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
