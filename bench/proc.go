package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat. The kernel reports them
// in USER_HZ, which is 100 on every architecture Linux exposes to user space
// (sysconf(_SC_CLK_TCK)), whatever the kernel's own tick rate.
const userHZ = 100

// parseStat returns utime+stime from the text of /proc/PID/stat.
func parseStat(b []byte) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may itself hold spaces or
	// parentheses, so fields are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no command field")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command, want at least 13", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// parseStatus returns VmRSS and VmHWM, in bytes, from the text of /proc/PID/status.
func parseStatus(b []byte) (rss, hwm uint64, err error) {
	var gotRSS, gotHWM bool
	for line := range bytes.Lines(b) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(name) {
		case "VmRSS":
			dst, gotRSS = &rss, true
		case "VmHWM":
			dst, gotHWM = &hwm, true
		default:
			continue
		}
		f := bytes.Fields(value)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, 0, fmt.Errorf("%s is %q, want a number of kB", name, bytes.TrimSpace(value))
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", name, err)
		}
		*dst = kb << 10
	}
	if !gotRSS || !gotHWM {
		return 0, 0, errors.New("no VmRSS or VmHWM (a kernel thread, or a zombie)")
	}
	return rss, hwm, nil
}

func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server process %d: %w", pid, err)
	}
	d, err := parseStat(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return d, nil
}

func readMemory(pid int) (rss, hwm uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("server process %d: %w", pid, err)
	}
	rss, hwm, err = parseStatus(b)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return rss, hwm, nil
}

// checkProcess fails unless pid is a process whose usage can be read.
func checkProcess(pid int) error {
	if _, err := readCPU(pid); err != nil {
		return err
	}
	_, _, err := readMemory(pid)
	return err
}

// Usage is what the server process spent over the measured phase.
type Usage struct {
	CPU     time.Duration // utime+stime
	PeakRSS uint64        // largest VmRSS sampled, bytes
	HWM     uint64        // VmHWM at the end, bytes
}

// sampleInterval is how often VmRSS is read.
const sampleInterval = 100 * time.Millisecond

// watch measures process pid from the time from until stop is closed, and then
// sends what it saw (or the first error) on the returned channel.
func watch(pid int, from time.Time, stop <-chan struct{}) <-chan usageResult {
	out := make(chan usageResult, 1)
	go func() {
		var u Usage
		sleepUntil(from, stop)
		cpu0, err := readCPU(pid)
		sample := func() {
			if err != nil {
				return
			}
			var rss uint64
			if rss, u.HWM, err = readMemory(pid); err == nil {
				u.PeakRSS = max(u.PeakRSS, rss)
			}
		}
		sample()
		tick := time.NewTicker(sampleInterval)
		defer tick.Stop()
		for done := false; !done; {
			select {
			case <-tick.C:
				sample()
			case <-stop:
				done = true
			}
		}
		sample()
		if err == nil {
			var cpu1 time.Duration
			cpu1, err = readCPU(pid)
			u.CPU = cpu1 - cpu0
		}
		out <- usageResult{u, err}
	}()
	return out
}

type usageResult struct {
	Usage
	err error
}
