package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram counts latencies in log-linear buckets: every power of two is split
// into subBuckets equal parts, so a bucket is at most 1/128 of its values wide and
// a percentile read from its middle is within 0.4% of the truth. Its size is fixed
// however long the run, and Record is safe for concurrent use without a lock.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

const (
	subBits    = 7
	subBuckets = 1 << subBits // 128
	// maxExp bounds what is told apart: 2^40 ns is about 18 minutes; longer
	// latencies land in the last bucket (the exact maximum is still kept).
	maxExp     = 40
	numBuckets = (maxExp - subBits + 1) * subBuckets
)

// bucketOf returns the bucket of v (nanoseconds, ≥ 0).
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v) // exact below 128 ns
	}
	shift := bits.Len64(v) - subBits - 1 // v>>shift is in [128, 256)
	i := (shift+1)*subBuckets + int(v>>shift) - subBuckets
	return min(i, numBuckets-1)
}

// bucketRange returns the values bucket i holds: [lo, lo+width).
func bucketRange(i int) (lo, width uint64) {
	if i < subBuckets {
		return uint64(i), 1
	}
	shift := i/subBuckets - 1
	return uint64(i%subBuckets+subBuckets) << shift, 1 << shift
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns how many latencies were recorded.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest latency recorded.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Percentile returns the latency at or below which q (0..1) of the recorded ones
// fall: the middle of the bucket holding that rank, never more than the maximum
// (which is exact).
// It is 0 when nothing was recorded.
func (h *Histogram) Percentile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5) // nearest rank, 1-based
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			if rank == n || i == numBuckets-1 {
				return h.Max() // exact; and the overflow bucket has no useful middle
			}
			lo, width := bucketRange(i)
			return min(time.Duration(lo+width/2), h.Max())
		}
	}
	return h.Max()
}
