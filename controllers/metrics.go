package controllers

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/promutil"
)

// maxPartitionSeries bounds the per-partition series of one consumer: the
// partitions with the largest time lag, as in status.lag.partitions.
const maxPartitionSeries = 16

// Metrics holds lagscale's per-consumer Prometheus series. Series of a
// deleted consumer are removed by Forget.
type Metrics struct {
	lagRecords     *prometheus.GaugeVec
	lagSeconds     *prometheus.GaugeVec
	inflow         *prometheus.GaugeVec
	consumption    *prometheus.GaugeVec
	replicas       *prometheus.GaugeVec
	scaleEvents    *prometheus.CounterVec
	partitionLag   *prometheus.GaugeVec
	partitionLagS  *prometheus.GaugeVec
	stalled        *prometheus.GaugeVec
	decisionDelay  prometheus.Histogram
	statusWrites   *prometheus.CounterVec
	mu             sync.Mutex
	partitionsSeen map[types.NamespacedName][][2]string
}

// NewMetrics creates the series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	consumer := []string{"namespace", "name"}
	m := &Metrics{
		lagRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lagscale_consumer_lag_records", Help: "Total lag of the consumer group in records."}, consumer),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lagscale_consumer_lag_seconds", Help: "Time lag of the consumer group: age of the oldest unconsumed record."}, consumer),
		inflow: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lagscale_consumer_inflow_records_per_second", Help: "Records produced per second to the consumer's partitions."}, consumer),
		consumption: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lagscale_consumer_consumption_records_per_second", Help: "Records committed per second by the consumer group."}, consumer),
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lagscale_consumer_replicas", Help: "Handler replicas, by kind: desired or ready."}, append(consumer, "kind")),
		scaleEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lagscale_scale_events_total", Help: "Replica changes made by lagscale, by direction: up or down."}, append(consumer, "direction")),
		partitionLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lagscale_consumer_partition_lag_records", Help: "Lag of the consumer's partitions with the largest time lag (at most 16 per consumer)."}, append(consumer, "topic", "partition")),
		partitionLagS: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lagscale_consumer_partition_lag_seconds", Help: "Time lag of the consumer's partitions with the largest time lag (at most 16 per consumer)."}, append(consumer, "topic", "partition")),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lagscale_consumer_partitions_stalled", Help: "Partitions that do not move although the group has members (health STALL or STOP); they are left out of sizing."}, consumer),
		decisionDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lagscale_decision_latency_seconds",
			Help: "Time from the lag snapshot that asked for a replica change to the Deployment write that made it.",
			// From a fraction of a second (an idle operator) to the
			// minutes a starved queue would take.
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300},
		}),
		statusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lagscale_status_writes_total",
			Help: "EventConsumer status writes, by kind: scale (the record of a replica change), state (a condition, a group state, a partition's health) or figures (live lag figures only).",
		}, []string{"kind"}),
		partitionsSeen: map[types.NamespacedName][][2]string{},
	}
	for _, g := range []**prometheus.GaugeVec{&m.lagRecords, &m.lagSeconds, &m.inflow, &m.consumption, &m.replicas, &m.partitionLag, &m.partitionLagS, &m.stalled} {
		*g = promutil.Register(reg, *g)
	}
	m.scaleEvents = promutil.Register(reg, m.scaleEvents)
	m.decisionDelay = promutil.Register(reg, m.decisionDelay)
	m.statusWrites = promutil.Register(reg, m.statusWrites)
	return m
}

// DecisionLatency records the time from a snapshot to the replica write
// it caused.
func (m *Metrics) DecisionLatency(d time.Duration) {
	if m == nil {
		return
	}
	m.decisionDelay.Observe(max(d, 0).Seconds())
}

// StatusWrite counts one status write of kind (writeScale, writeState or
// writeFigures).
func (m *Metrics) StatusWrite(kind string) {
	if m == nil {
		return
	}
	m.statusWrites.WithLabelValues(kind).Inc()
}

// Observe records a consumer's status.
func (m *Metrics) Observe(key types.NamespacedName, s *v1alpha1.EventConsumerStatus) {
	if m == nil {
		return
	}
	ns, name := key.Namespace, key.Name
	m.replicas.WithLabelValues(ns, name, "desired").Set(float64(s.DesiredReplicas))
	m.replicas.WithLabelValues(ns, name, "ready").Set(float64(s.ReadyReplicas))
	m.ObserveLag(key, s.Lag)
}

// ObserveLag sets a consumer's live lag series. The lag engine's change
// notification calls it for every new snapshot, so /metrics carries the
// live figures at every poll whether or not a reconcile follows.
func (m *Metrics) ObserveLag(key types.NamespacedName, l *v1alpha1.LagStatus) {
	if m == nil || l == nil {
		return
	}
	ns, name := key.Namespace, key.Name
	m.lagRecords.WithLabelValues(ns, name).Set(float64(l.Total))
	m.lagSeconds.WithLabelValues(ns, name).Set(l.Seconds)
	m.inflow.WithLabelValues(ns, name).Set(l.ProductionRate)
	m.consumption.WithLabelValues(ns, name).Set(l.ConsumptionRate)

	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make([][2]string, 0, min(len(l.Partitions), maxPartitionSeries))
	for i, p := range l.Partitions {
		if i == maxPartitionSeries {
			break
		}
		part := strconv.Itoa(int(p.Partition))
		m.partitionLag.WithLabelValues(ns, name, p.Topic, part).Set(float64(p.Lag))
		m.partitionLagS.WithLabelValues(ns, name, p.Topic, part).Set(p.Seconds)
		seen = append(seen, [2]string{p.Topic, part})
	}
	// Only the series of partitions that left the list go: the others are
	// set in place, so a poll allocates no series anew.
	for _, p := range m.partitionsSeen[key] {
		if !slices.Contains(seen, p) {
			m.partitionLag.DeleteLabelValues(ns, name, p[0], p[1])
			m.partitionLagS.DeleteLabelValues(ns, name, p[0], p[1])
		}
	}
	m.partitionsSeen[key] = seen
}

// Stalled records how many of a consumer's partitions are stuck.
func (m *Metrics) Stalled(key types.NamespacedName, n int) {
	if m == nil {
		return
	}
	m.stalled.WithLabelValues(key.Namespace, key.Name).Set(float64(n))
}

// ScaleEvent counts one replica change.
func (m *Metrics) ScaleEvent(key types.NamespacedName, from, to int32) {
	if m == nil || from == to {
		return
	}
	dir := "up"
	if to < from {
		dir = "down"
	}
	m.scaleEvents.WithLabelValues(key.Namespace, key.Name, dir).Inc()
}

// Forget removes every series of a deleted consumer.
func (m *Metrics) Forget(key types.NamespacedName) {
	if m == nil {
		return
	}
	match := prometheus.Labels{"namespace": key.Namespace, "name": key.Name}
	for _, v := range []*prometheus.GaugeVec{m.lagRecords, m.lagSeconds, m.inflow, m.consumption, m.replicas, m.partitionLag, m.partitionLagS, m.stalled} {
		v.DeletePartialMatch(match)
	}
	m.scaleEvents.DeletePartialMatch(match)
	m.mu.Lock()
	delete(m.partitionsSeen, key)
	m.mu.Unlock()
}
