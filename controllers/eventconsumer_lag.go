package controllers

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
)

// LagSource is what the reconcilers need of the lag engine. internal/lag's
// Engine implements it against Kafka; tests may use a fake.
type LagSource interface {
	Register(lag.Subscription)
	Unregister(lag.ConsumerKey)
	Snapshot(lag.ConsumerKey) (lag.Snapshot, bool)
	ClusterStatus(id string) (lag.ClusterStatus, bool)
	PollNow(lag.ConsumerKey)
}

// maxStatusPartitions bounds status.lag.partitions.
const maxStatusPartitions = 64

// lagView is the snapshot a reconcile works with.
type lagView struct {
	snap       lag.Snapshot
	reachable  bool
	errMessage string
}

// lagQueue carries the lag engine's change notifications into the
// controller's work queue. A notification never blocks the engine's poll
// cycle: it is a non-blocking Add to the queue, which coalesces the
// reconciles of one consumer into one, or, before the controller has
// started, an entry in a set that coalesces the same way and is handed to
// the queue when it starts. Once the controller has stopped, its queue drops
// what is added, so shutdown never waits on a reader that is gone.
type lagQueue struct {
	mu      sync.Mutex
	queue   workqueue.TypedRateLimitingInterface[reconcile.Request]
	pending map[types.NamespacedName]int
}

// notify queues a reconcile of nn at w's priority, where the queue has
// priorities (controller-runtime's default queue does), after w's delay.
func (l *lagQueue) notify(nn types.NamespacedName, w work) {
	l.mu.Lock()
	q := l.queue
	if q == nil {
		if l.pending == nil {
			l.pending = map[types.NamespacedName]int{}
		}
		// Before the controller starts, every consumer is reconciled
		// at once anyway: the delay is dropped.
		if p, ok := l.pending[nn]; !ok || w.priority > p {
			l.pending[nn] = w.priority
		}
	}
	l.mu.Unlock()
	if q != nil {
		add(q, nn, w)
	}
}

// add queues nn at w's priority after w's delay, or plainly on a queue
// without priorities.
func add(q workqueue.TypedRateLimitingInterface[reconcile.Request], nn types.NamespacedName, w work) {
	req := reconcile.Request{NamespacedName: nn}
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: &w.priority, After: w.after}, req)
		return
	}
	if w.after > 0 {
		q.AddAfter(req, w.after)
		return
	}
	q.Add(req)
}

// source is the controller-runtime source that receives the queue.
func (l *lagQueue) source() source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.queue = q
		for nn, p := range l.pending {
			add(q, nn, work{priority: p})
		}
		l.pending = nil
		return nil
	})
}

// LagChanged is the lag engine's OnChange callback. It decides on the
// consumer's new snapshot at once (arrive) and queues a reconcile of that
// consumer, and of no other, only when the API server has work to do. It
// never blocks.
func (r *EventConsumerReconciler) LagChanged(key lag.ConsumerKey) {
	nn := types.NamespacedName{Namespace: key.Namespace, Name: key.Name}
	if w, ok := r.arrive(nn, true); ok {
		r.lagQ.notify(nn, w)
	}
}

// LagUnchanged is the lag engine's OnUnchanged callback: a poll found the
// consumer's lag as it was. It decides again only when the last decision
// wants a look with time (a stabilization window) or lag figures wait to be
// written, and queues a reconcile only for work for the API server. With
// it wired, set LagRevisits. It never blocks.
func (r *EventConsumerReconciler) LagUnchanged(key lag.ConsumerKey) {
	nn := types.NamespacedName{Namespace: key.Namespace, Name: key.Name}
	if w, ok := r.arrive(nn, false); ok {
		r.lagQ.notify(nn, w)
	}
}

// lagEvents is the controller-runtime source fed by LagChanged.
func (r *EventConsumerReconciler) lagEvents() source.Source {
	if r.Lag == nil {
		return nil
	}
	return r.lagQ.source()
}

func consumerKey(nn types.NamespacedName) lag.ConsumerKey {
	return lag.ConsumerKey{Namespace: nn.Namespace, Name: nn.Name}
}

// clusterConfig turns a resolved connection into the lag engine's config,
// with the Secret values it read.
func clusterConfig(c *resolvedConnection) lag.ClusterConfig {
	cfg := lag.ClusterConfig{BootstrapServers: c.BootstrapServers}
	if c.TLS != nil {
		cfg.TLS = &lag.TLSConfig{CA: c.ca, Cert: c.cert, Key: c.key, InsecureSkipVerify: c.TLS.InsecureSkipVerify}
	}
	if c.SASL != nil {
		cfg.SASL = &lag.SASLConfig{Mechanism: string(c.SASL.Mechanism), Username: c.username, Password: c.password}
	}
	return cfg
}

// subscribe registers the consumer with the lag engine (idempotent) and
// reads its latest snapshot into st.lag.
func (r *EventConsumerReconciler) subscribe(st *reconcileState) {
	if r.Lag == nil {
		return
	}
	ec := st.ec
	key := consumerKey(client.ObjectKeyFromObject(ec))
	interval := r.pollInterval(ec)
	reset := string(ec.Spec.Scaling.OffsetResetPolicy)
	if reset == "" {
		reset = string(v1alpha1.DefaultOffsetResetPolicy)
	}
	r.Lag.Register(lag.Subscription{
		Consumer:          key,
		Cluster:           clusterConfig(st.conn),
		Group:             ec.Spec.ConsumerGroup,
		Topics:            ec.Spec.Topics,
		DeadLetterTopic:   ec.Spec.DeadLetterTopic,
		GroupType:         lagGroupType(ec.Spec.GroupType),
		OffsetResetPolicy: reset,
		PollInterval:      interval,
	})
	snap, ok := r.Lag.Snapshot(key)
	if !ok {
		// A new subscription waits for its cluster's next cycle otherwise.
		r.Lag.PollNow(key)
		return
	}
	st.lag = &lagView{snap: snap, reachable: snap.Reachable && !snap.Stale, errMessage: snap.Error}
	if c := streamsStalled(snap); c != nil {
		st.stalled = c
	}
	if len(snap.MissingTopics) > 0 && snap.Reachable {
		st.stalled = &condition{
			reason:  v1alpha1.ReasonTopicNotFound,
			message: fmt.Sprintf("topics %v do not exist in Kafka: create them (lagscale continues by itself when they appear)", snap.MissingTopics),
		}
	}
}

func (r *EventConsumerReconciler) unsubscribe(key types.NamespacedName) {
	if r.Lag != nil {
		r.Lag.Unregister(consumerKey(key))
	}
}

// applyLagStatus writes status.lag and status.partitions from the snapshot.
func applyLagStatus(st *reconcileState) {
	l := st.lag
	if l == nil || l.snap.Time.IsZero() {
		return
	}
	st.ec.Status.Lag = lagStatusOf(l.snap)
	st.ec.Status.Partitions = int32(l.snap.PartitionCount)
	st.ec.Status.Topics = statusTopics(st.ec, &l.snap)
}

// lagStatusOf is status.lag for a snapshot.
func lagStatusOf(s lag.Snapshot) *v1alpha1.LagStatus {
	ls := &v1alpha1.LagStatus{
		Total:           s.TotalLag,
		Seconds:         round1(s.TimeLagSeconds),
		ProductionRate:  round1(s.ProductionRate),
		ConsumptionRate: round1(s.ConsumptionRate),
		GroupState:      s.GroupState,
		Members:         int32(s.Members),
		GroupType:       apiGroupType(s.GroupType),
		Stale:           s.Stale,
		MissingTopics:   s.MissingTopics,
		Updated:         &metav1.Time{Time: s.Time.Truncate(time.Second)},
	}
	if s.GroupType == lag.GroupConsumer || s.GroupType == lag.GroupShare || s.GroupType == lag.GroupStreams {
		ls.GroupEpoch, ls.AssignmentEpoch = &s.GroupEpoch, &s.AssignmentEpoch
		ls.RebalancingMembers = int32(s.RebalancingMembers)
	}
	if d, ok := lag.DrainSeconds(s); ok {
		v := round1(d)
		ls.DrainSeconds = &v
	}
	parts := slices.Clone(s.Partitions)
	slices.SortStableFunc(parts, func(a, b lag.PartitionLag) int {
		if c := cmp.Compare(b.TimeLagSeconds, a.TimeLagSeconds); c != 0 {
			return c
		}
		return cmp.Compare(b.Lag, a.Lag)
	})
	if len(parts) > maxStatusPartitions {
		parts = parts[:maxStatusPartitions]
	}
	for _, p := range parts {
		ls.Partitions = append(ls.Partitions, v1alpha1.PartitionLagStatus{
			Topic: p.Topic, Partition: p.Partition, Lag: p.Lag, Seconds: round1(p.TimeLagSeconds),
			CommittedOffset: p.CommittedOffset, EndOffset: p.EndOffset, Health: string(p.Health),
		})
	}
	ls.Unreadable = unreadable(s)
	ls.Streams = streamsLagStatus(s.Streams)
	if d := s.DeadLetters; d != nil {
		ls.DeadLetters = &v1alpha1.DeadLetterStatus{Topic: d.Topic, Missing: d.Missing, Records: d.Records, RatePerSecond: round1(d.Rate)}
	}
	ls.TimestampsUnreadable = truncate(s.TimestampsUnreadable, 1024)
	return ls
}

// maxUnreadable bounds status.lag.unreadable.
const maxUnreadable = 16

// unreadable lists the topics and partitions the snapshot could not read.
func unreadable(s lag.Snapshot) []v1alpha1.UnreadableLag {
	var out []v1alpha1.UnreadableLag
	for _, t := range s.TopicErrors {
		out = append(out, v1alpha1.UnreadableLag{Topic: t.Topic, Error: truncate(t.Error, 1024)})
	}
	for _, p := range s.Partitions {
		if p.Error != "" {
			out = append(out, v1alpha1.UnreadableLag{Topic: p.Topic, Partition: &p.Partition, Error: truncate(p.Error, 1024)})
		}
	}
	if len(out) > maxUnreadable {
		out = out[:maxUnreadable]
	}
	return out
}

// lagGroupType maps spec.groupType to the lag engine's type.
func lagGroupType(t v1alpha1.GroupType) string {
	switch t {
	case v1alpha1.GroupTypeConsumer:
		return lag.GroupConsumer
	case v1alpha1.GroupTypeShare:
		return lag.GroupShare
	case v1alpha1.GroupTypeStreams:
		return lag.GroupStreams
	}
	return lag.GroupClassic
}

// apiGroupType maps the type the broker reports to the API's spelling.
func apiGroupType(t string) string {
	switch t {
	case lag.GroupClassic:
		return string(v1alpha1.GroupTypeClassic)
	case lag.GroupConsumer:
		return string(v1alpha1.GroupTypeConsumer)
	case lag.GroupShare:
		return string(v1alpha1.GroupTypeShare)
	case lag.GroupStreams:
		return string(v1alpha1.GroupTypeStreams)
	}
	return ""
}

// groupTypeCondition sets GroupTypeMatches: False with the lag engine's
// message when the broker knows the group under another type than
// spec.groupType, True when it knows it under that type, Unknown while
// the group does not exist on the broker.
func groupTypeCondition(st *reconcileState) {
	c := metav1.Condition{Type: v1alpha1.ConditionGroupTypeMatches, ObservedGeneration: st.ec.Generation}
	want := st.ec.Spec.GroupType
	if want == "" {
		want = v1alpha1.DefaultGroupType
	}
	switch l := st.lag; {
	case l == nil || l.snap.Time.IsZero():
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, v1alpha1.ReasonWaitingForLag, "no poll of the Kafka cluster has finished yet"
	case l.snap.TypeMismatch != "":
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonGroupTypeMismatch, l.snap.TypeMismatch
	case l.snap.GroupType == "":
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, v1alpha1.ReasonGroupNotFound, fmt.Sprintf("group %s has no members on the broker yet", st.ec.Spec.ConsumerGroup)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonGroupTypeMatches, fmt.Sprintf("the broker reports group %s as a %s group", st.ec.Spec.ConsumerGroup, want)
	}
	meta.SetStatusCondition(&st.ec.Status.Conditions, c)
}

// lagConditions sets KafkaReachable and GroupTypeMatches.
func lagConditions(st *reconcileState) {
	groupTypeCondition(st)
	c := metav1.Condition{Type: v1alpha1.ConditionKafkaReachable, ObservedGeneration: st.ec.Generation}
	switch l := st.lag; {
	case l == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, v1alpha1.ReasonWaitingForLag, "no poll of the Kafka cluster has finished yet"
	case l.reachable:
		// No time in the message: it would change every poll and force a
		// status write; status.lag.updated says when.
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonKafkaReachable, "the last poll of the cluster succeeded"
	default:
		msg := l.errMessage
		if msg == "" {
			msg = "the last poll failed"
		}
		if !l.snap.Time.IsZero() {
			msg = fmt.Sprintf("%s; last good reading %s ago, replicas held", msg, st.now.Sub(l.snap.Time).Truncate(time.Second))
		}
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonKafkaUnreachable, msg
	}
	meta.SetStatusCondition(&st.ec.Status.Conditions, c)
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
