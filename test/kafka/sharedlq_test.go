//go:build kafka

package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/testkit"
)

// TestShareGroupDeadLetters runs a share group with a broker dead-letter
// queue (share.version=2, KIP-1191) on Apache Kafka 4.4.0: a handler
// rejects two poison records and keeps releasing a third until the
// delivery limit sends it to the DLQ too. The lag engine reports the DLQ's
// three records as dead letters, and none of them as lag, so they are no
// reason to add replicas.
func TestShareGroupDeadLetters(t *testing.T) {
	a := testkit.StartApache(t, testkit.KafkaVersion)
	ctx := context.Background()
	adm := a.Admin()
	up, err := adm.UpdateFeatures(ctx, false, kadm.FeatureUpdate{Feature: "share.version", MaxVersionLevel: 2, UpgradeType: 1})
	if err == nil {
		err = up.Error()
	}
	if err != nil {
		t.Fatalf("share.version=2 (dead-letter queues for share groups): %v", err)
	}
	const group, topic, dlq = "pq-g", "pq", "dlq.pq"
	testkit.CreateTopics(t, a, 1, topic)
	enable := "true"
	if r, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"errors.deadletterqueue.group.enable": &enable}, dlq); err != nil || r.Err != nil {
		t.Fatalf("creating %s: %v %v", dlq, err, r.Err)
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	for k, v := range map[string]string{"share.auto.offset.reset": "earliest", "errors.deadletterqueue.topic.name": dlq, "share.delivery.count.limit": "2"} {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		res.Configs = append(res.Configs, c)
	}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, testkit.Client(t, a))
	if err != nil || len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("setting the group's dead-letter topic: %v %+v", err, resp)
	}
	produce(t, a, topic, 1, 10)

	e := lag.NewEngine(lag.Options{})
	sub := lag.Subscription{
		Consumer: lag.ConsumerKey{Namespace: "compat", Name: group},
		Cluster:  lag.ClusterConfig{BootstrapServers: a.Bootstrap()},
		Group:    group, Topics: []string{topic}, GroupType: lag.GroupShare,
		DeadLetterTopic: dlq, OffsetResetPolicy: lag.ResetEarliest, PollInterval: time.Second,
	}
	e.Register(sub)
	t.Cleanup(func() { e.Unregister(sub.Consumer) })
	poll := func() lag.Snapshot {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = e.Poll(pctx, sub.Cluster.ID())
		s, _ := e.Snapshot(sub.Consumer)
		return s
	}

	cons := testkit.Client(t, a, kgo.ShareGroup(group), kgo.ConsumeTopics(topic), kgo.FetchMaxWait(200*time.Millisecond))
	var snap lag.Snapshot
	testkit.WaitFor(t, 90*time.Second, "three dead letters and no lag", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cons.PollRecords(pctx, 100)
		cancel()
		for _, r := range fs.Records() {
			switch string(r.Value) {
			case "0-0":
				r.Ack(kgo.AckRelease) // fails every time: retried until the limit
			case "0-3", "0-6":
				r.Ack(kgo.AckReject) // poison
			default:
				r.Ack(kgo.AckAccept)
			}
		}
		_ = cons.FlushAcks(ctx)
		snap = poll()
		d := snap.DeadLetters
		return !snap.Stale && d != nil && d.Records == 3 && snap.TotalLag == 0
	})
	ends, err := adm.ListEndOffsets(ctx, dlq)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup(dlq, 0); o.Offset != snap.DeadLetters.Records {
		t.Fatalf("engine reports %d dead letters, the DLQ's end offset is %d", snap.DeadLetters.Records, o.Offset)
	}
	t.Logf("dead letters %+v, share lag %d", *snap.DeadLetters, snap.TotalLag)
}
