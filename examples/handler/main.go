// Command handler is an example lagscale handler built on pkg/handler.
//
// It simulates work instead of doing any: every record costs WORK_MS
// milliseconds plus up to WORK_JITTER_MS of random jitter, and when
// FAIL_EVERY is N > 0 every record whose offset+1 is a multiple of N is a
// poison record that always fails (so it is retried, then dead-lettered, or
// stops its partition without a dead-letter topic). On exit it prints a
// one-line summary of what it did.
//
// HANDLED_LOG, when set, is a file to which "topic partition offset" is
// appended for every handled record; tests use it to check that nothing
// was lost.
//
// Everything else (Kafka connection, group, dead-letter topic, health and
// metrics address) comes from the lagscale handler contract; see
// pkg/handler.
package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/pkg/handler"
)

// errPoison is what a simulated poison record fails with.
var errPoison = errors.New("simulated poison record")

// work is the simulated record processing.
type work struct {
	cost, jitter time.Duration
	failEvery    int64
	mu           sync.Mutex
	log          *os.File
}

func (w *work) handle(ctx context.Context, r *kgo.Record) error {
	if w.failEvery > 0 && (r.Offset+1)%w.failEvery == 0 {
		return errPoison
	}
	d := w.cost
	if w.jitter > 0 {
		d += rand.N(w.jitter)
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if w.log != nil {
		w.mu.Lock()
		_, err := fmt.Fprintf(w.log, "%s %d %d\n", r.Topic, r.Partition, r.Offset)
		w.mu.Unlock()
		if err != nil {
			return fmt.Errorf("writing HANDLED_LOG: %w", err)
		}
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	w := &work{}
	var err error
	var ms, jitter, failEvery int64
	if ms, err = envInt("WORK_MS"); err != nil {
		return err
	}
	if jitter, err = envInt("WORK_JITTER_MS"); err != nil {
		return err
	}
	if failEvery, err = envInt("FAIL_EVERY"); err != nil {
		return err
	}
	// CONCURRENCY bounds the partitions one replica handles at once, so
	// that a replica's capacity is CONCURRENCY*1000/WORK_MS records/s, as
	// a CPU-bound handler's would be. Unset keeps the SDK's default.
	concurrency, err := envInt("CONCURRENCY")
	if err != nil {
		return err
	}
	w.cost, w.jitter, w.failEvery = time.Duration(ms)*time.Millisecond, time.Duration(jitter)*time.Millisecond, failEvery
	if p := os.Getenv("HANDLED_LOG"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("opening HANDLED_LOG: %w", err)
		}
		defer f.Close()
		w.log = f
	}

	// The first SIGTERM drains and commits; a second one exits at once.
	ctx, cancel := handler.SignalContext()
	defer cancel()
	opts := []handler.Option{handler.WithRetry(3, 50*time.Millisecond, time.Second)}
	if concurrency > 0 {
		opts = append(opts, handler.WithConcurrency(int(concurrency)))
	}
	c, err := handler.New(w.handle, opts...)
	if err != nil {
		return err
	}
	if err := c.Run(ctx); err != nil {
		return err
	}
	s := c.Stats()
	fmt.Printf("summary handled=%d failed=%d deadLettered=%d retries=%d stalledPartitions=%d\n",
		s.Handled, s.Failed, s.DeadLettered, s.Retries, len(s.Stalled))
	return nil
}

// envInt reads a non-negative integer variable; unset means 0.
func envInt(name string) (int64, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: expected a non-negative integer", name, v)
	}
	return n, nil
}
