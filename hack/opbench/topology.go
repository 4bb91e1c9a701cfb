package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topology is the Kafka side of the bench: topics of P partitions on a
// kfake cluster of B brokers, G consumer groups per topic, and probe
// topics each read by one group that gets a sudden backlog.
type topology struct {
	partitions     int32
	groupsPerTopic int
	topics         []string // the consumers' topics
	probes         []string // one topic and one group each
	kf             *kfake.Cluster
	brokers        []string
}

// groupTopic is the topic that consumer i reads, and groupName its group.
func (t *topology) groupTopic(i int) string { return t.topics[i/t.groupsPerTopic] }
func groupName(i int) string                { return fmt.Sprintf("g%05d", i) }
func probeGroup(i int) string               { return fmt.Sprintf("probe-g%02d", i) }

// newTopology starts kfake with ceil(consumers/groupsPerTopic) topics and
// the probe topics, every one with the given partitions.
func newTopology(consumers, groupsPerTopic, probes, brokers int, partitions int32) (*topology, error) {
	t := &topology{partitions: partitions, groupsPerTopic: groupsPerTopic}
	for i := range (consumers + groupsPerTopic - 1) / groupsPerTopic {
		t.topics = append(t.topics, fmt.Sprintf("t%04d", i))
	}
	for i := range probes {
		t.probes = append(t.probes, fmt.Sprintf("probe%02d", i))
	}
	kf, err := kfake.NewCluster(kfake.NumBrokers(brokers), kfake.SeedTopics(partitions, append(append([]string{}, t.topics...), t.probes...)...))
	if err != nil {
		return nil, err
	}
	t.kf, t.brokers = kf, kf.ListenAddrs()
	return t, nil
}

func (t *topology) close() { t.kf.Close() }

// traffic is the steady load: one record per partition per second on
// every topic, and every group committing its topic's end offsets every
// commitEvery, spread evenly over that period, so that every group's lag
// moves on every partition and stays small (the consumers keep up). A
// probe's group stops committing once its backlog is produced.
type traffic struct {
	t           *topology
	cl          *kgo.Client
	adm         *kadm.Client
	commitEvery time.Duration
	consumers   int
	frozen      sync.Map // probe index -> struct{}: no more commits
	produced    atomic.Int64
	commits     atomic.Int64
	errs        atomic.Int64
	stop        context.CancelFunc
	wg          sync.WaitGroup
}

// startTraffic starts producing and committing; stop it with (*traffic).close.
func (t *topology) startTraffic(ctx context.Context, consumers int, commitEvery time.Duration) (*traffic, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(t.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(1<<20), kgo.ProducerLinger(20*time.Millisecond))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	tr := &traffic{t: t, cl: cl, adm: kadm.NewClient(cl), commitEvery: commitEvery, consumers: consumers, stop: cancel}
	tr.wg.Add(2)
	go tr.produceLoop(ctx)
	go tr.commitLoop(ctx)
	return tr, nil
}

// halt stops producing and committing; close also closes the client.
func (tr *traffic) halt() {
	tr.stop()
	tr.wg.Wait()
}

func (tr *traffic) close() {
	tr.halt()
	tr.cl.Close()
}

func (tr *traffic) produceLoop(ctx context.Context) {
	defer tr.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	all := append(append([]string{}, tr.t.topics...), tr.t.probes...)
	for {
		for _, topic := range all {
			for p := range tr.t.partitions {
				tr.cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte("x")}, tr.done)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (tr *traffic) done(_ *kgo.Record, err error) {
	if err != nil {
		tr.errs.Add(1)
		return
	}
	tr.produced.Add(1)
}

// commitLoop commits, each second, the end offsets of a tenth (one
// commitEvery-th) of the groups, probes included until frozen.
func (tr *traffic) commitLoop(ctx context.Context) {
	defer tr.wg.Done()
	parts := max(1, int(tr.commitEvery/time.Second))
	groups := tr.consumers + len(tr.t.probes)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for slice := 0; ; slice = (slice + 1) % parts {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ends, err := tr.adm.ListEndOffsets(ctx, append(append([]string{}, tr.t.topics...), tr.t.probes...)...)
		if err != nil {
			tr.errs.Add(1)
			continue
		}
		offsets := ends.Offsets()
		var jobs []int
		for g := slice; g < groups; g += parts {
			jobs = append(jobs, g)
		}
		_ = parallel(len(jobs), func(j int) error {
			g := jobs[j]
			group, topic := "", ""
			if g < tr.consumers {
				group, topic = groupName(g), tr.t.groupTopic(g)
			} else {
				p := g - tr.consumers
				if _, frozen := tr.frozen.Load(p); frozen {
					return nil
				}
				group, topic = probeGroup(p), tr.t.probes[p]
			}
			if _, err := tr.adm.CommitOffsets(ctx, group, kadm.Offsets{topic: offsets[topic]}); err != nil {
				tr.errs.Add(1)
				return nil
			}
			tr.commits.Add(1)
			return nil
		})
	}
}

// backlog freezes probe p's group and produces perPartition records to
// each of its partitions, and returns when the broker has them all.
func (tr *traffic) backlog(ctx context.Context, p int, perPartition int) error {
	tr.frozen.Store(p, struct{}{})
	var rs []*kgo.Record
	for part := range tr.t.partitions {
		for range perPartition {
			rs = append(rs, &kgo.Record{Topic: tr.t.probes[p], Partition: part, Value: []byte("backlog")})
		}
	}
	return tr.cl.ProduceSync(ctx, rs...).FirstErr()
}

// catchUp commits every group, probes included, at its topic's end
// offsets: every consumer has caught up, so lag stands still at zero
// once the traffic has stopped.
func (tr *traffic) catchUp(ctx context.Context) error {
	ends, err := tr.adm.ListEndOffsets(ctx, append(append([]string{}, tr.t.topics...), tr.t.probes...)...)
	if err != nil {
		return err
	}
	offsets := ends.Offsets()
	return parallel(tr.consumers+len(tr.t.probes), func(g int) error {
		group, topic := "", ""
		if g < tr.consumers {
			group, topic = groupName(g), tr.t.groupTopic(g)
		} else {
			group, topic = probeGroup(g-tr.consumers), tr.t.probes[g-tr.consumers]
		}
		_, err := tr.adm.CommitOffsets(ctx, group, kadm.Offsets{topic: offsets[topic]})
		return err
	})
}
