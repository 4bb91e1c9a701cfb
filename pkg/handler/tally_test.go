package handler

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestTallyTimesRunsOfCalls(t *testing.T) {
	bounds := []float64{0.0005, 0.001, 0.002, 0.004}
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tl := newTally(bounds, t0)

	// Fast calls: every run closes under the first bound; runs grow.
	tl.runLen = 1
	tl.closeRun(bounds, at(100*time.Microsecond))
	if tl.runMax != 2 || tl.buckets[0] != 1 {
		t.Fatalf("after one fast call: runMax %d buckets %v", tl.runMax, tl.buckets)
	}
	tl.runLen = 2
	tl.closeRun(bounds, at(300*time.Microsecond))
	if tl.runMax != 4 || tl.buckets[0] != 3 {
		t.Fatalf("after a fast run of 2: runMax %d buckets %v", tl.runMax, tl.buckets)
	}

	// One slow call among three fast ones: 3 ms in all. The slow call is
	// counted at the run's time (le 0.004), the others in the first bucket,
	// and runs shrink to single calls.
	tl.runLen = 4
	tl.closeRun(bounds, at(3300*time.Microsecond))
	if tl.runMax != 1 || tl.buckets[0] != 6 || tl.buckets[3] != 1 {
		t.Fatalf("after a slow run: runMax %d buckets %v", tl.runMax, tl.buckets)
	}
	// A call slower than every bound lands in +Inf.
	tl.runLen = 1
	tl.closeRun(bounds, at(13300*time.Microsecond))
	if tl.buckets[4] != 1 || tl.n != 8 {
		t.Fatalf("after a 10 ms call: buckets %v n %d", tl.buckets, tl.n)
	}
	if math.Abs(tl.sum-0.0133) > 1e-9 {
		t.Errorf("sum %v, want 0.0133 (every second between the first start and the last end)", tl.sum)
	}
	// Closing with no call in the run only moves the clock.
	tl.closeRun(bounds, at(20*time.Millisecond))
	if tl.n != 8 || !tl.clock.Equal(at(20*time.Millisecond)) {
		t.Errorf("empty run changed the tally: n %d clock %v", tl.n, tl.clock)
	}

	// The shared histogram: cumulative buckets, count and sum.
	h := newBatchHistogram("x_seconds", "x", bounds)
	h.add(tl)
	h.add(tl)
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	hist := mfs[0].GetMetric()[0].GetHistogram()
	cum := func(i int) uint64 { return hist.GetBucket()[i].GetCumulativeCount() }
	if hist.GetSampleCount() != 16 || cum(0) != 12 || cum(1) != 12 || cum(2) != 12 || cum(3) != 14 || math.Abs(hist.GetSampleSum()-0.0266) > 1e-9 {
		t.Errorf("histogram %v", hist)
	}
}
