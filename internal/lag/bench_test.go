package lag

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkPollCycle polls 1,000 consumer groups, each on its own topic of 8
// partitions, on one kfake broker. It reports Kafka requests per cycle, the
// cycle latency (ns/op) and the heap after 50 cycles, for the whole process
// (which includes the in-process broker) and for what the engine added.
func BenchmarkPollCycle(b *testing.B) {
	const (
		groups     = 1000
		partitions = 8
		cycles     = 50
	)
	topics := make([]string, groups)
	for i := range topics {
		topics[i] = fmt.Sprintf("topic-%04d", i)
	}
	kf := newKafka(b, kfake.SeedTopics(partitions, topics...))
	addrs := kf.ListenAddrs()
	ctx := context.Background()

	prod := producer(b, addrs)
	recs := make([]*kgo.Record, 0, groups*partitions*2)
	for _, t := range topics {
		for p := range int32(partitions) {
			recs = append(recs, &kgo.Record{Topic: t, Partition: p}, &kgo.Record{Topic: t, Partition: p})
		}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatalf("producing: %v", err)
	}
	adm := kadm.NewClient(newClient(b, addrs))
	for i, t := range topics {
		offs := make(kadm.Offsets)
		for p := range int32(partitions) {
			offs.AddOffset(t, p, 1, -1)
		}
		if err := adm.CommitAllOffsets(ctx, fmt.Sprintf("group-%04d", i), offs); err != nil {
			b.Fatalf("committing: %v", err)
		}
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	e := NewEngine(Options{})
	var sub Subscription
	for i, t := range topics {
		sub = subscription(fmt.Sprintf("consumer-%04d", i), addrs, fmt.Sprintf("group-%04d", i), t)
		// A short interval makes every cycle refresh metadata as it does
		// in production, where cycles are an interval apart.
		sub.PollInterval = time.Millisecond
		e.Register(sub)
	}
	id := sub.Cluster.ID()
	poll := func() {
		if err := e.Poll(ctx, id); err != nil {
			b.Fatalf("poll: %v", err)
		}
	}
	poll() // connect and find coordinators outside the measurement

	done := 1
	b.ResetTimer()
	for b.Loop() {
		poll()
		done++
	}
	b.StopTimer()
	_, reqs := e.LastCycleRequests(id)
	for ; done < cycles; done++ {
		poll()
	}
	if s, _ := e.Snapshot(sub.Consumer); s.PartitionCount != partitions || s.TotalLag != partitions {
		b.Fatalf("last consumer's snapshot = %+v, want %d partitions with lag 1 each", s, partitions)
	}

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(reqs), "requests/cycle")
	b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "heap-MiB")
	b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/(1<<20), "engine-heap-MiB")
	runtime.KeepAlive(e)
}

// BenchmarkMarkerSettle settles one cycle's marker reads on 8,000
// partitions (1,000 topics of 8) that 10 groups each have a commit below
// the end on: the shape of groups that commit less often than they are
// polled, where every new commit position is read once.
func BenchmarkMarkerSettle(b *testing.B) {
	const topics, partitions, groups = 1000, 8, 10
	want := make(map[tp]int64)
	keep := make(map[skipKey]bool)
	c := &cluster{e: &Engine{opts: Options{Now: time.Now}}, parts: map[tp]*partState{}, skips: map[skipKey]skip{}}
	resp := kmsg.NewPtrFetchResponse()
	for t := range topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = fmt.Sprintf("topic-%04d", t)
		for p := range int32(partitions) {
			key := tp{rt.Topic, p}
			want[key] = 100
			for g := range int64(groups) {
				keep[skipKey{key, 100 + g}] = true
				c.skips[skipKey{key, 90 + g}] = skip{next: 95}
			}
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	b.ResetTimer()
	for b.Loop() {
		c.settleFetched(resp, want, fromsByPartition(keep), fromsByPartition(c.skips), nil)
	}
}
