package controllers

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
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

// lagEventBuffer is the depth of the channel between the lag engine and the
// controller; the engine blocks (back-pressure) when it is full.
const lagEventBuffer = 1024

type lagChannel struct {
	once sync.Once
	ch   chan event.TypedGenericEvent[*v1alpha1.EventConsumer]
}

func (l *lagChannel) get() chan event.TypedGenericEvent[*v1alpha1.EventConsumer] {
	l.once.Do(func() { l.ch = make(chan event.TypedGenericEvent[*v1alpha1.EventConsumer], lagEventBuffer) })
	return l.ch
}

// LagChanged is the lag engine's OnChange callback: it queues a reconcile of
// the consumer whose snapshot changed, and of no other.
func (r *EventConsumerReconciler) LagChanged(key lag.ConsumerKey) {
	ec := &v1alpha1.EventConsumer{}
	ec.Namespace, ec.Name = key.Namespace, key.Name
	r.lagCh.get() <- event.TypedGenericEvent[*v1alpha1.EventConsumer]{Object: ec}
}

// lagEvents is the controller-runtime source fed by LagChanged.
func (r *EventConsumerReconciler) lagEvents() source.Source {
	if r.Lag == nil {
		return nil
	}
	return source.Channel(r.lagCh.get(), &handler.TypedEnqueueRequestForObject[*v1alpha1.EventConsumer]{})
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
	s := l.snap
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
	if s.GroupType == lag.GroupConsumer || s.GroupType == lag.GroupShare {
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
	ls.TimestampsUnreadable = truncate(s.TimestampsUnreadable, 1024)
	st.ec.Status.Lag = ls
	st.ec.Status.Partitions = int32(s.PartitionCount)
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
