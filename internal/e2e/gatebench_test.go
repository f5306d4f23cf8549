package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGateMeasurement prices the gate (BENCHMARKS.md, "The gate"): with warm tokens,
// requests per CPU-second and latency calling a stand-in upstream directly and
// through `latchkey gate`. The gate and the upstream are processes of their own, so
// their CPU time is read from /proc; the load generator is this test.
//
//	LATCHKEY_GATE_BENCH=1 [GATE_BENCH_DURATION=10s GATE_BENCH_WORKERS=8] go test ./internal/e2e -run TestGateMeasurement -v
func TestGateMeasurement(t *testing.T) {
	if os.Getenv("LATCHKEY_GATE_BENCH") == "" {
		t.Skip("a measurement, not a test: set LATCHKEY_GATE_BENCH=1")
	}
	duration, workers := 10*time.Second, 8
	if d, err := time.ParseDuration(os.Getenv("GATE_BENCH_DURATION")); err == nil {
		duration = d
	}
	if n, err := strconv.Atoi(os.Getenv("GATE_BENCH_WORKERS")); err == nil {
		workers = n
	}
	s := start(t, options{seed: rsSeed(t)})
	upAddr := freeAddr(t)
	upBin := filepath.Join(t.TempDir(), "upstream")
	if out, err := exec.Command("go", "build", "-o", upBin, "./testdata/upstream").CombinedOutput(); err != nil {
		t.Fatalf("build upstream: %v %s", err, out)
	}
	up := exec.Command(upBin, upAddr)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Process.Kill(); up.Wait() })
	upURL := "http://" + upAddr
	waitUp(t, upURL)
	gate := startGate(t, s.issuer("acme"), upURL)
	gatePID := gatePIDOf(t, gate)
	tok := apiToken(t, s, callerBasic, "orders:read")

	direct := load(t, upURL+"/orders", tok, duration, workers, up.Process.Pid)
	through := load(t, gate+"/orders", tok, duration, workers, up.Process.Pid, gatePID)
	t.Logf("workers %d, %s each, GOMAXPROCS of each process: default (%d CPUs)", workers, duration, numCPU())
	t.Logf("direct:  %8.0f req/s, upstream %.2f CPU-s → %6.0f req per CPU-s; p50 %s p99 %s",
		direct.rate, direct.cpu[0], float64(direct.n)/direct.cpu[0], direct.p50, direct.p99)
	t.Logf("gate:    %8.0f req/s, upstream %.2f + gate %.2f CPU-s → %6.0f req per CPU-s (gate alone %6.0f); p50 %s p99 %s",
		through.rate, through.cpu[0], through.cpu[1], float64(through.n)/(through.cpu[0]+through.cpu[1]),
		float64(through.n)/through.cpu[1], through.p50, through.p99)
	t.Logf("added by the gate: p50 %s, p99 %s, %.0f µs of gate CPU per request",
		through.p50-direct.p50, through.p99-direct.p99, through.cpu[1]/float64(through.n)*1e6)
}

type loadResult struct {
	n        int
	rate     float64
	cpu      []float64 // CPU-seconds of each watched process during the run
	p50, p99 time.Duration
}

// load sends GETs with tok from workers goroutines for d and measures them, and the
// CPU time the processes pids spent meanwhile.
func load(t *testing.T, u, tok string, d time.Duration, workers int, pids ...int) loadResult {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	get := func() (time.Duration, bool) {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		res, err := hc.Do(req)
		if err != nil {
			return 0, false
		}
		var buf [512]byte
		for {
			if _, err := res.Body.Read(buf[:]); err != nil {
				break
			}
		}
		res.Body.Close()
		return time.Since(start), res.StatusCode == 200
	}
	for range 200 { // warm: connections, the gate's verified-token cache
		if _, ok := get(); !ok {
			t.Fatalf("warm-up request to %s failed", u)
		}
	}
	cpu0 := cpuOf(t, pids)
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Since(start) < d {
				l, ok := get()
				if !ok {
					t.Error("a request failed")
					return
				}
				mine = append(mine, l)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1 := cpuOf(t, pids)
	slices.Sort(lat)
	r := loadResult{n: len(lat), rate: float64(len(lat)) / elapsed.Seconds(),
		p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
	for i := range pids {
		r.cpu = append(r.cpu, cpu1[i]-cpu0[i])
	}
	return r
}

// cpuOf reads each process's user + system CPU-seconds from /proc (proc(5): fields
// 14 and 15 of stat, in clock ticks of 1/100 s).
func cpuOf(t *testing.T, pids []int) []float64 {
	var out []float64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		out = append(out, (ut+st)/100)
	}
	return out
}

// gatePIDOf finds the gate process listening at u by its command line.
func gatePIDOf(t *testing.T, u string) int {
	addr := strings.TrimPrefix(u, "http://")
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 1 && args[1] == "gate" && slices.Contains(args, addr) {
			pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
			return pid
		}
	}
	t.Fatalf("no gate process for %s", addr)
	return 0
}

func waitUp(t *testing.T, u string) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if res, err := http.Get(u); err == nil {
			res.Body.Close()
			return
		}
	}
	t.Fatalf("%s never answered", u)
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
