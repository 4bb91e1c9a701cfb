package handler_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/pkg/handler"
)

// The benchmarks consume b.N records from 12 partitions of an in-process
// kfake broker, committing as they go: once through pkg/handler with a
// no-op function, once with a bare franz-go poll loop. Compare records/s.
// Both create their client and join the group inside the timed region.
//
// Each runs with two record sizes. value=8B ("p<partition>-<i>") packs
// about 100,000 records into a default 1 MiB partition fetch, so a run is
// only a few fetches and the handling of the last one is never overlapped
// with fetching. value=256B (random letters and digits, a typical small
// event) gives about 4,000 records per partition fetch, as real topics do.

const benchParts = 12

var benchMaxPoll = handler.DefaultMaxPollRecords

var benchSizes = []int{8, 256}

func benchBroker(b *testing.B, size int) *broker {
	br := newBroker(b, benchParts, "bench")
	per := max(b.N/benchParts, 1)
	var value func(int32, int) string
	if size > 8 {
		rnd := rand.New(rand.NewPCG(1, 2))
		const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		buf := make([]byte, size)
		value = func(int32, int) string {
			for i := range buf {
				buf[i] = alnum[rnd.IntN(len(alnum))]
			}
			return string(buf)
		}
	}
	br.produce("bench", benchParts, per, value)
	return br
}

func BenchmarkHandlerNoop(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("value=%dB", size), func(b *testing.B) { benchHandlerNoop(b, size) })
	}
}

func BenchmarkBareFranzGoLoop(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("value=%dB", size), func(b *testing.B) { benchBareLoop(b, size) })
	}
}

func benchHandlerNoop(b *testing.B, size int) {
	br := benchBroker(b, size)
	target := int64(max(b.N/benchParts, 1) * benchParts)
	var n atomic.Int64
	done := make(chan struct{})
	c, err := handler.New(func(context.Context, *kgo.Record) error {
		if n.Add(1) == target {
			close(done)
		}
		return nil
	}, handler.WithConfig(br.config(fmt.Sprintf("bench-%d", b.N), "bench")), handler.WithHTTPAddr(""), handler.WithLogger(logr.Discard()), handler.WithMaxPollRecords(benchMaxPoll))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.ResetTimer()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	<-done
	el := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-errc; err != nil {
		b.Logf("consumer stopped: %v", err)
	}
	b.ReportMetric(float64(target)/el.Seconds(), "records/s")
}

func benchBareLoop(b *testing.B, size int) {
	br := benchBroker(b, size)
	target := int64(max(b.N/benchParts, 1) * benchParts)
	b.ResetTimer()
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.addrs...), kgo.ConsumerGroup(fmt.Sprintf("bare-%d", b.N)), kgo.ConsumeTopics("bench"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.Balancers(kgo.CooperativeStickyBalancer()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	var n int64
	for n < target {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(*kgo.Record) { n++ })
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(target)/el.Seconds(), "records/s")
}
