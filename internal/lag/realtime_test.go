package lag

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProductionRateAndTimeLag runs a real producer at a steady rate and a
// group that follows it and then stops committing, polling with the real
// clock, and checks the production rate against the producer's rate and the
// time lag against the true age of the record at the committed offset.
func TestProductionRateAndTimeLag(t *testing.T) {
	const (
		interval  = 200 * time.Millisecond
		window    = 5 // polls
		perTick   = 2
		tick      = 10 * time.Millisecond // 200 records/s
		follow    = 1500 * time.Millisecond
		runFor    = 3 * time.Second
		behindLag = 20
	)
	kf := newKafka(t, kfake.SeedTopics(1, "stream"))
	addrs := kf.ListenAddrs()
	prod := producer(t, addrs)
	adm := kadm.NewClient(newClient(t, addrs))

	// produced[i] is when record i was appended, as stamped by the producer.
	var (
		mu       sync.Mutex
		produced []time.Time
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			recs := make([]*kgo.Record, perTick)
			for i := range recs {
				recs[i] = &kgo.Record{Topic: "stream", Value: []byte("v")}
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return
			}
			mu.Lock()
			for _, r := range recs {
				for int64(len(produced)) <= r.Offset {
					produced = append(produced, time.Time{})
				}
				produced[r.Offset] = r.Timestamp
			}
			mu.Unlock()
		}
	})
	defer func() { cancel(); wg.Wait() }()

	e := newEngine(t, Options{HealthWindow: window})
	sub := subscription("stream", addrs, "follower", "stream")
	sub.PollInterval = interval
	e.Register(sub)

	start := time.Now()
	var committed int64
	for time.Since(start) < runFor {
		time.Sleep(interval)
		if time.Since(start) < follow {
			mu.Lock()
			n := int64(len(produced))
			mu.Unlock()
			if n > behindLag {
				committed = n - behindLag
				offs := make(kadm.Offsets)
				offs.AddOffset("stream", 0, committed, -1)
				if err := adm.CommitAllOffsets(context.Background(), "follower", offs); err != nil {
					t.Fatalf("commit: %v", err)
				}
			}
		}
		mustPoll(t, e, sub)
	}
	s := mustSnapshot(t, e, sub.Consumer)
	pl := partitionOf(t, s, "stream", 0)

	// The producer's own rate over the engine's window, from its timestamps.
	mu.Lock()
	from := s.Time.Add(-window * interval)
	var n int
	for _, ts := range produced[:pl.EndOffset] {
		if ts.After(from) && !ts.After(s.Time) {
			n++
		}
	}
	ageOfCommitted := s.Time.Sub(produced[committed]).Seconds()
	mu.Unlock()
	trueRate := float64(n) / (window * interval).Seconds()

	t.Logf("production rate %.1f/s, producer %.1f/s; time lag %.3fs, true age %.3fs; health %s", pl.ProductionRate, trueRate, pl.TimeLagSeconds, ageOfCommitted, pl.Health)
	if math.Abs(pl.ProductionRate-trueRate) > 0.1*trueRate {
		t.Errorf("production rate %.1f/s, producer's steady rate %.1f/s: more than 10%% apart", pl.ProductionRate, trueRate)
	}
	if pl.CommittedOffset != committed {
		t.Fatalf("committed offset %d, want %d", pl.CommittedOffset, committed)
	}
	if math.Abs(pl.TimeLagSeconds-ageOfCommitted) > interval.Seconds() {
		t.Errorf("time lag %.3fs, true age of the committed record %.3fs: more than one poll interval apart", pl.TimeLagSeconds, ageOfCommitted)
	}
	if pl.ConsumptionRate != 0 || pl.Health != HealthStop {
		t.Errorf("after commits stopped: consumption %.1f/s, health %s; want 0 and STOP (no members)", pl.ConsumptionRate, pl.Health)
	}
}
