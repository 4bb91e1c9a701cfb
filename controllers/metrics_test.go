package controllers

import (
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

func TestMetricsBoundedAndForgotten(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	a := types.NamespacedName{Namespace: "ns", Name: "a"}
	b := types.NamespacedName{Namespace: "ns", Name: "b"}
	status := &v1alpha1.EventConsumerStatus{DesiredReplicas: 3, ReadyReplicas: 2, Lag: &v1alpha1.LagStatus{Total: 10, Seconds: 4}}
	for i := 0; i < 40; i++ {
		status.Lag.Partitions = append(status.Lag.Partitions, v1alpha1.PartitionLagStatus{Topic: "t", Partition: int32(i), Lag: int64(i)})
	}
	m.Observe(a, status)
	m.Observe(b, status)
	m.ScaleEvent(a, 1, 3)
	m.ScaleEvent(a, 3, 2)

	if got := testutil.ToFloat64(m.lagRecords.WithLabelValues("ns", "a")); got != 10 {
		t.Errorf("lag records %v", got)
	}
	if got := testutil.ToFloat64(m.replicas.WithLabelValues("ns", "a", "ready")); got != 2 {
		t.Errorf("ready replicas %v", got)
	}
	if got := testutil.ToFloat64(m.scaleEvents.WithLabelValues("ns", "a", "down")); got != 1 {
		t.Errorf("scale down events %v", got)
	}
	// Per-partition series are bounded per consumer.
	if n := testutil.CollectAndCount(m.partitionLag); n != 2*maxPartitionSeries {
		t.Errorf("%d partition series, want %d", n, 2*maxPartitionSeries)
	}
	// Another partition enters the top ones: the one that left goes, the
	// others stay.
	shifted := *status.Lag
	shifted.Partitions = status.Lag.Partitions[1 : maxPartitionSeries+1]
	m.ObserveLag(b, &shifted)
	if n := testutil.CollectAndCount(m.partitionLag); n != 2*maxPartitionSeries {
		t.Errorf("%d partition series after a shift, want %d", n, 2*maxPartitionSeries)
	}
	if got := testutil.ToFloat64(m.partitionLag.WithLabelValues("ns", "b", "t", strconv.Itoa(maxPartitionSeries))); got != maxPartitionSeries {
		t.Errorf("the partition that entered: lag %v, want %d", got, maxPartitionSeries)
	}
	if m.partitionLag.DeleteLabelValues("ns", "b", "t", "0") {
		t.Error("the partition that left the top ones still has a series")
	}
	// Fewer partitions later: the old series go.
	status.Lag.Partitions = status.Lag.Partitions[:2]
	m.Observe(b, status)
	if n := testutil.CollectAndCount(m.partitionLag); n != maxPartitionSeries+2 {
		t.Errorf("%d partition series after shrinking, want %d", n, maxPartitionSeries+2)
	}

	m.Forget(a)
	for name, tc := range map[string]struct {
		c    prometheus.Collector
		want int
	}{
		"lag":          {m.lagRecords, 1},
		"replicas":     {m.replicas, 2},
		"partitions":   {m.partitionLag, 2},
		"scale events": {m.scaleEvents, 0},
	} {
		if n := testutil.CollectAndCount(tc.c); n != tc.want {
			t.Errorf("%s: %d series after deleting a, want %d (b's only)", name, n, tc.want)
		}
	}
}
