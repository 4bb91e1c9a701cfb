package handler

import (
	"math"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Per-record metrics updated with shared atomics cost more than a fast
// handler function: with a partition per goroutine, every record bounced
// the same cache lines between cores. Each partition worker counts into a
// tally of its own instead and adds it to the shared series when it
// finishes its part of a batch, or after tallyFlushEvery, so that a slow
// handler's metrics still move while it works.
const tallyFlushEvery = 100 * time.Millisecond

// batchHistogram is a Prometheus histogram whose observations arrive in
// batches: Add merges a tally's bucket counts with one atomic add per
// non-empty bucket.
type batchHistogram struct {
	desc    *prometheus.Desc
	bounds  []float64       // upper bounds, ascending; +Inf is implicit
	counts  []atomic.Uint64 // per bucket, not cumulative; len(bounds)+1
	count   atomic.Uint64
	sumBits atomic.Uint64 // float64 bits
}

func newBatchHistogram(name, help string, bounds []float64) *batchHistogram {
	return &batchHistogram{
		desc:   prometheus.NewDesc(name, help, nil, nil),
		bounds: bounds,
		counts: make([]atomic.Uint64, len(bounds)+1),
	}
}

// Describe implements prometheus.Collector.
func (h *batchHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector.
func (h *batchHistogram) Collect(ch chan<- prometheus.Metric) {
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		buckets[b] = cum
	}
	// Count and sum are read after the buckets and updated after them by
	// add, so count >= every bucket, as Prometheus expects.
	count := max(h.count.Load(), cum+h.counts[len(h.bounds)].Load())
	ch <- prometheus.MustNewConstHistogram(h.desc, count, math.Float64frombits(h.sumBits.Load()), buckets)
}

func (h *batchHistogram) add(t *tally) {
	if t.n == 0 {
		return
	}
	for i, n := range t.buckets {
		if n != 0 {
			h.counts[i].Add(n)
		}
	}
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+t.sum)) {
			break
		}
	}
	h.count.Add(t.n)
}

// maxRun caps how many calls one clock reading may time together.
const maxRun = 16

// tally is one partition worker's uncounted work.
//
// Reading the clock costs about as much as a fast handler call on some
// machines (60 ns on the 2-core VM the benchmark ran on), so calls are
// timed in runs: a run starts at clock and is closed, with one clock read,
// after runMax calls. A run whose total time is under the histogram's
// first bound puts every call in the first bucket, which is exact since
// each took less than the total; runMax then doubles, up to maxRun. A run
// that is not that fast is recorded as one slow call taking the run's
// whole time (an upper bound) and the others in the first bucket: exact
// for the usual case of one slow call among fast ones, so a latency spike
// is never averaged away. It sets runMax back to 1, so slow calls are
// then timed one by one; only the run in which a handler turns slow as a
// whole (at most maxRun calls) puts its other calls too low. The sum is
// always exact.
type tally struct {
	handled   uint64
	n         uint64   // latency observations
	buckets   []uint64 // per bucket of the histogram's bounds, not cumulative
	sum       float64
	clock     time.Time // start of the open run: the end of the worker's last step
	runLen    int       // calls in the open run
	runMax    int
	lastFlush time.Time
}

func newTally(bounds []float64, now time.Time) *tally {
	return &tally{buckets: make([]uint64, len(bounds)+1), clock: now, lastFlush: now, runMax: 1}
}

// called counts one finished call in the open run, closing the run when it
// is long enough.
func (t *tally) called(bounds []float64) {
	t.runLen++
	if t.runLen >= t.runMax {
		t.closeRun(bounds, time.Now())
	}
}

// closeRun records the open run's calls as ending at now and starts the
// next run there.
func (t *tally) closeRun(bounds []float64, now time.Time) {
	if t.runLen == 0 {
		t.clock = now
		return
	}
	el := now.Sub(t.clock).Seconds()
	n := uint64(t.runLen)
	t.n += n
	t.sum += el
	if el < bounds[0] {
		t.buckets[0] += n
	} else {
		t.buckets[0] += n - 1
		t.buckets[sort.SearchFloat64s(bounds, el)]++
	}
	if el < bounds[0]/2 {
		t.runMax = min(2*t.runMax, maxRun)
	} else {
		t.runMax = 1
	}
	t.runLen = 0
	t.clock = now
}

// restart starts a new run now, after a pause that is no handler call
// (a retry backoff, a dead-letter write). The open run must be closed.
func (t *tally) restart() { t.clock = time.Now() }

func (t *tally) reset() {
	t.handled, t.n, t.sum = 0, 0, 0
	clear(t.buckets)
}
