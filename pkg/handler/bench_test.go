package handler_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lagscale/lagscale/pkg/handler"
)

// BenchmarkSDK consumes b.N records (rounded down to a multiple of 12)
// from 12 partitions of an in-process kfake broker, committing as it goes:
// once through pkg/handler with a no-op function ("handler"), once with a
// bare franz-go poll loop that commits after every poll ("bare"). Compare
// their records/s; the two sub-benchmarks alternate under -count, so a busy
// machine slows both alike.
//
// Both use franz-go's default fetch settings, the same group options
// (cooperative-sticky, auto-commit off) and a fresh broker and group. The
// broker holds every fetch until the consumer has joined the group and
// asks for records; the clock starts when the fetches are let go and stops
// when the last record reaches the consuming code. Client start and group
// join are left out; every fetch and every record is in.
//
//	go test -run '^$' -bench BenchmarkSDK -benchtime 2000000x -count 5 ./pkg/handler/
func BenchmarkSDK(b *testing.B) {
	b.Run("handler", benchHandler)
	b.Run("bare", benchBareLoop)
}

const benchParts = 12

// benchBroker is a broker holding b.N records whose fetches wait for open.
type benchBroker struct {
	*broker
	records int64
	asked   chan struct{} // closed by the first fetch request
	open    chan struct{} // closed by start
	start   time.Time     // written before open is closed
}

func newBenchBroker(b *testing.B) *benchBroker {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(benchParts, "bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	per := max(b.N/benchParts, 1)
	bb := &benchBroker{
		broker:  &broker{t: b, addrs: c.ListenAddrs()},
		records: int64(per * benchParts),
		asked:   make(chan struct{}),
		open:    make(chan struct{}),
	}
	bb.produce("bench", benchParts, per, nil)
	var once sync.Once
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case <-bb.open:
		default:
			once.Do(func() { close(bb.asked) })
			// franz-go fetches on a connection of its own, so holding
			// the fetch does not hold the group's requests.
			c.SleepControl(func() { <-bb.open })
		}
		return nil, nil, false // let the broker answer
	})
	return bb
}

// startClock lets the fetches go once the consumer asked for records, and
// starts the clock. It runs on its own goroutine: the bare loop's first
// poll waits for it.
func (bb *benchBroker) startClock() {
	<-bb.asked
	bb.start = time.Now()
	close(bb.open)
}

func (bb *benchBroker) report(b *testing.B, end time.Time) {
	b.StopTimer()
	el := end.Sub(bb.start)
	b.ReportMetric(float64(bb.records)/el.Seconds(), "records/s")
	b.ReportMetric(float64(el.Nanoseconds())/float64(bb.records), "ns/record")
}

func benchHandler(b *testing.B) {
	bb := newBenchBroker(b)
	var (
		n    atomic.Int64
		end  time.Time
		done = make(chan struct{})
	)
	c, err := handler.New(func(context.Context, *kgo.Record) error {
		if n.Add(1) == bb.records {
			end = time.Now()
			close(done)
		}
		return nil
	}, handler.WithConfig(bb.config(fmt.Sprintf("bench-%d", b.N), "bench")), handler.WithHTTPAddr(""), handler.WithLogger(logr.Discard()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	b.ResetTimer()
	go bb.startClock()
	go func() { errc <- c.Run(ctx) }()
	<-done
	bb.report(b, end)
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

func benchBareLoop(b *testing.B) {
	bb := newBenchBroker(b)
	cl, err := kgo.NewClient(kgo.SeedBrokers(bb.addrs...), kgo.ConsumerGroup(fmt.Sprintf("bare-%d", b.N)), kgo.ConsumeTopics("bench"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.Balancers(kgo.CooperativeStickyBalancer()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	b.ResetTimer()
	go bb.startClock()
	var (
		n   int64
		end time.Time
	)
	for n < bb.records {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(*kgo.Record) {
			if n++; n == bb.records {
				end = time.Now()
			}
		})
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			b.Fatal(err)
		}
	}
	bb.report(b, end)
}
