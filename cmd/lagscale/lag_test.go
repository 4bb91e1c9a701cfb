package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

func TestPrintLag(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	drain := 42.0
	ec := &v1alpha1.EventConsumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"},
		Spec:       v1alpha1.EventConsumerSpec{Topics: []string{"orders"}, ConsumerGroup: "orders-handler"},
		Status: v1alpha1.EventConsumerStatus{
			Partitions: 70, ReadyReplicas: 2, DesiredReplicas: 3,
			Lag: &v1alpha1.LagStatus{
				Total: 130, Seconds: 12.5, ProductionRate: 10, ConsumptionRate: 13, DrainSeconds: &drain,
				GroupState: "Stable", Members: 2, Stale: true, Updated: &metav1.Time{Time: now.Add(-7 * time.Second)},
				Partitions: []v1alpha1.PartitionLagStatus{
					{Topic: "orders", Partition: 3, CommittedOffset: -1, EndOffset: 30, Lag: 30, Seconds: 12.5, Health: "STOP"},
					{Topic: "orders", Partition: 1, CommittedOffset: 100, EndOffset: 200, Lag: 100, Seconds: 4, Health: "OK"},
				},
			},
		},
	}
	var b bytes.Buffer
	if err := printLag(&b, ec, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[1], "PARTITION") || !strings.Contains(lines[2], " 1 ") || !strings.Contains(lines[3], " 3 ") {
		t.Errorf("partitions not in order:\n%s", out)
	}
	for _, want := range []string{"-  ", "STOP", "TOTAL LAG 130 records", "drains in 42s", "replicas 2 ready of 3 desired", "read 7s ago", "STALE", "showing the 2 partitions with the largest time lag of 70"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	b.Reset()
	ec.Status.Lag = nil
	if err := printLag(&b, ec, now); err != nil || !strings.Contains(b.String(), "no lag reading yet") {
		t.Errorf("without lag: %v %s", err, b.String())
	}
}
