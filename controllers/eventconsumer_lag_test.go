package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
)

// startKafka runs an in-process kfake broker for one test.
func startKafka(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func kafkaClient(t *testing.T, addrs []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produceN(t *testing.T, cl *kgo.Client, topic string, partition int32, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte("x")}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// withEngine starts a real lag engine for the operator under test.
func withEngine(t *testing.T) func(*EventConsumerReconciler) {
	return func(r *EventConsumerReconciler) {
		e := lag.NewEngine(lag.Options{Logger: logr.Discard(), OnChange: r.LagChanged, OnUnchanged: r.LagUnchanged})
		r.LagRevisits = true
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = e.Start(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		r.Lag = e
		r.DefaultPollInterval = time.Second
	}
}

func getConsumer(t *testing.T, ns, name string) *v1alpha1.EventConsumer {
	ec := &v1alpha1.EventConsumer{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ec); err != nil {
		t.Fatal(err)
	}
	return ec
}

func TestLagStatusFromKafka(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(4, "orders"))
	addrs := kafka.ListenAddrs()
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < 4; p++ {
		produceN(t, prod, "orders", p, 10*int(p+1)) // 10+20+30+40 = 100 records
	}
	// The group has consumed part of partition 0 and partition 3.
	adm := kadm.NewClient(kafkaClient(t, addrs))
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 4})
	offsets.Add(kadm.Offset{Topic: "orders", Partition: 3, At: 40})
	if _, err := adm.CommitOffsets(context.Background(), "orders-group", offsets); err != nil {
		t.Fatal(err)
	}

	startOperator(t, withEngine(t))
	ns := namespace(t)
	createConsumer(t, ns, "orders", v1alpha1.EventConsumerSpec{
		Topics: []string{"orders"}, ConsumerGroup: "orders-group",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{OffsetResetPolicy: v1alpha1.OffsetResetEarliest, PollIntervalSeconds: ptrTo[int32](1)},
	})
	// Committed: p0 at 4 (lag 6), p3 at 40 (lag 0). No commit on p1 and p2:
	// with earliest they count from the log start: 20 + 30.
	eventually(t, wait, func() error {
		ec := getConsumer(t, ns, "orders")
		l := ec.Status.Lag
		if l == nil {
			return fmt.Errorf("no lag status yet")
		}
		if l.Total != 56 || ec.Status.Partitions != 4 || len(l.Partitions) != 4 {
			return fmt.Errorf("lag total %d partitions %d/%d, want 56 and 4", l.Total, ec.Status.Partitions, len(l.Partitions))
		}
		c := meta.FindStatusCondition(ec.Status.Conditions, v1alpha1.ConditionKafkaReachable)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("KafkaReachable %+v", c)
		}
		return nil
	})
	got := map[int32]v1alpha1.PartitionLagStatus{}
	for _, p := range getConsumer(t, ns, "orders").Status.Lag.Partitions {
		got[p.Partition] = p
	}
	if got[0].Lag != 6 || got[0].CommittedOffset != 4 || got[0].EndOffset != 10 || got[1].CommittedOffset != -1 || got[1].Lag != 20 || got[3].Lag != 0 {
		t.Fatalf("partitions %+v", got)
	}

	// More records arrive: the engine's change event alone brings the new
	// lag into the status.
	produceN(t, prod, "orders", 3, 25)
	eventually(t, wait, func() error {
		if l := getConsumer(t, ns, "orders").Status.Lag; l.Total != 81 {
			return fmt.Errorf("lag total %d, want 81", l.Total)
		}
		return nil
	})
}

func TestMissingTopicStallsThenRecovers(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(1, "present"))
	addrs := kafka.ListenAddrs()
	startOperator(t, withEngine(t))
	ns := namespace(t)
	createConsumer(t, ns, "later", v1alpha1.EventConsumerSpec{
		Topics: []string{"present", "later-topic"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{PollIntervalSeconds: ptrTo[int32](1)},
	})
	eventually(t, wait, func() error {
		ec := getConsumer(t, ns, "later")
		c := meta.FindStatusCondition(ec.Status.Conditions, v1alpha1.ConditionStalled)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonTopicNotFound || !strings.Contains(c.Message, "later-topic") {
			return fmt.Errorf("Stalled %+v", c)
		}
		return nil
	})
	adm := kadm.NewClient(kafkaClient(t, addrs))
	if _, err := adm.CreateTopic(context.Background(), 2, 1, nil, "later-topic"); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		ec := getConsumer(t, ns, "later")
		c := meta.FindStatusCondition(ec.Status.Conditions, v1alpha1.ConditionStalled)
		if c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("Stalled %+v", c)
		}
		if ec.Status.Partitions != 3 {
			return fmt.Errorf("partitions %d, want 3", ec.Status.Partitions)
		}
		return nil
	})
}

func TestKafkaUnreachable(t *testing.T) {
	startOperator(t, withEngine(t))
	ns := namespace(t)
	createConsumer(t, ns, "nokafka", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		// Nothing listens on port 1.
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"127.0.0.1:1"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{PollIntervalSeconds: ptrTo[int32](1)},
	})
	eventually(t, 30*time.Second, func() error {
		ec := getConsumer(t, ns, "nokafka")
		c := meta.FindStatusCondition(ec.Status.Conditions, v1alpha1.ConditionKafkaReachable)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonKafkaUnreachable || c.Message == "" {
			return fmt.Errorf("KafkaReachable %+v", c)
		}
		r := meta.FindStatusCondition(ec.Status.Conditions, v1alpha1.ConditionReady)
		if r == nil || r.Status != metav1.ConditionFalse || r.Reason != v1alpha1.ReasonKafkaUnreachable {
			return fmt.Errorf("Ready %+v", r)
		}
		return nil
	})
	// The Deployment exists at its initial replica count: an outage never
	// scales anything down.
	d := waitDeployment(t, ns, "nokafka", nil)
	if *d.Spec.Replicas != 1 {
		t.Fatalf("replicas %d", *d.Spec.Replicas)
	}
}

// TestSecretChangeReconnects: a wrong SASL password makes Kafka unreachable
// with a readable reason that does not contain the password; fixing the
// Secret reconnects without touching the EventConsumer.
func TestSecretChangeReconnects(t *testing.T) {
	const user, good, bad = "lagscale", "s3cret-right", "s3cret-WRONG"
	kafka := startKafka(t, kfake.SeedTopics(2, "secure"), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, good))
	addrs := kafka.ListenAddrs()
	startOperator(t, withEngine(t))
	ns := namespace(t)
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-user"}, StringData: map[string]string{"username": user, "password": bad}}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	createConsumer(t, ns, "secure", v1alpha1.EventConsumerSpec{
		Topics: []string{"secure"}, ConsumerGroup: "g",
		Kafka: v1alpha1.KafkaConnection{
			BootstrapServers: addrs,
			SASL:             &v1alpha1.SASLConfig{Mechanism: v1alpha1.SASLScramSHA512, SecretRef: v1alpha1.LocalObjectRef{Name: "kafka-user"}},
		},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{PollIntervalSeconds: ptrTo[int32](1)},
	})
	eventually(t, 30*time.Second, func() error {
		got := getConsumer(t, ns, "secure")
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionKafkaReachable)
		if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "SASL") {
			return fmt.Errorf("KafkaReachable %+v", c)
		}
		return nil
	})
	got := getConsumer(t, ns, "secure")
	for _, c := range got.Status.Conditions {
		if strings.Contains(c.Message, bad) || strings.Contains(c.Message, good) {
			t.Fatalf("a password leaked into condition %s: %s", c.Type, c.Message)
		}
	}
	list := &corev1.EventList{}
	if err := env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if strings.Contains(e.Message, bad) {
			t.Fatalf("a password leaked into event %s: %s", e.Reason, e.Message)
		}
	}

	// Fix the Secret: the watch re-registers with the new credentials.
	secret.StringData = map[string]string{"password": good}
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		got := getConsumer(t, ns, "secure")
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionKafkaReachable)
		if c == nil || c.Status != metav1.ConditionTrue || got.Status.Partitions != 2 {
			return fmt.Errorf("KafkaReachable %+v partitions %d", c, got.Status.Partitions)
		}
		return nil
	})
}

// countingQueue is a work queue that counts what is added, as
// controller-runtime's queue does: one entry per key until it is taken.
type countingQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	mu   sync.Mutex
	keys map[reconcile.Request]int
}

func (q *countingQueue) Add(r reconcile.Request) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.keys[r]++
}

// TestLagChangedNeverBlocks: 2,000 consumers change before the controller
// has started reading; every notification returns at once (the lag engine
// calls it from its poll cycle, which must never wait on the controller),
// and each consumer reaches the queue once when it starts.
func TestLagChangedNeverBlocks(t *testing.T) {
	r := &EventConsumerReconciler{Lag: &fakeLag{}}
	r.setup()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 {
			for i := range 2000 {
				r.LagChanged(lag.ConsumerKey{Namespace: "ns", Name: fmt.Sprintf("c%d", i)})
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("LagChanged blocked: 4,000 notifications of 2,000 consumers did not return within 30s")
	}
	q := &countingQueue{keys: map[reconcile.Request]int{}}
	if err := r.lagEvents().Start(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if len(q.keys) != 2000 {
		t.Fatalf("%d consumers queued, want 2000", len(q.keys))
	}
	for k, n := range q.keys {
		if n != 1 {
			t.Fatalf("%s queued %d times before the start, want once", k, n)
		}
	}
	// Once started, notifications go straight to the queue.
	r.LagChanged(lag.ConsumerKey{Namespace: "ns", Name: "late"})
	if q.keys[reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "late"}}] != 1 {
		t.Fatal("a notification after the start did not reach the queue")
	}
}
