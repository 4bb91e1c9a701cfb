//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/sandbox"
)

// TestSandboxKafkaOutage stops the broker mid-run, while a backlog holds
// replicas above minReplicas, for longer than the stabilization window:
// the consumer reports KafkaReachable=False, replicas do not drop, and
// everything recovers when the broker returns with its data. A scaler that
// read the outage as "no lag" would scale in once the window had passed.
// Its handler is the Node.js example (sdk/node), run through the sandbox's
// image map, so that a librdkafka-based handler rides out the outage too.
func TestSandboxKafkaOutage(t *testing.T) {
	r := root(t)
	requireTools(t, r)
	dir := t.TempDir()
	ctx := context.Background()
	s, err := sandbox.Up(ctx, sandbox.Options{Dir: dir, Root: r, KafkaPort: freePort(t), APIPort: 0, Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	record := func() {
		pids, _ := sandbox.RecordedPIDs(dir)
		seen = append(seen, pids...)
	}
	t.Cleanup(func() {
		record()
		for _, line := range s.Stop() {
			t.Log("stopped", line)
		}
		// The sandbox's supervisor is this test process; everything else
		// it recorded must be gone.
		var others []int
		for _, p := range seen {
			if p != os.Getpid() {
				others = append(others, p)
			}
		}
		if left := alivePIDs(others); len(left) > 0 {
			t.Errorf("processes left behind: %v", left)
		}
	})
	record()

	const (
		ns, name, topic = "default", "outage", "outage-orders"
		poll            = 2
		stabilization   = 20 // seconds
		outage          = 45 * time.Second
	)
	bootstrap := s.KafkaAddr()
	if err := sandbox.CreateTopic(ctx, bootstrap, topic, 6); err != nil {
		t.Fatal(err)
	}
	handledLog := filepath.Join(dir, "handled.log")
	ec := sandbox.DemoConsumer(sandbox.DemoOptions{Namespace: ns, Name: name, Topic: topic, Partitions: 6, WorkMS: 20, PollIntervalSeconds: poll, ScaleDownStabilizationSeconds: stabilization}, bootstrap)
	ec.Spec.Scaling.MinReplicas = ptr.To[int32](1)
	ec.Spec.Scaling.MaxLagSeconds = ptr.To[int32](5)
	ec.Spec.Handler.Image = sandbox.NodeHandlerImage
	ec.Spec.Handler.Env = append(ec.Spec.Handler.Env, corev1.EnvVar{Name: "HANDLED_LOG", Value: handledLog})
	if err := s.Client.Create(ctx, ec); err != nil {
		t.Fatal(err)
	}
	// 4,000 records at 50/s per replica: a backlog that takes the group
	// well above minReplicas 1.
	produceN(ctx, t, bootstrap, topic, 4000, 2000)
	eventually(t, 2*time.Minute, "the backlog scales the group above minReplicas", func() (bool, string) {
		cur := getEC(t, s.Client, ns, name)
		ok := cur != nil && cur.Status.DesiredReplicas >= 3 && cur.Status.Lag != nil && cur.Status.Lag.Total > 0 &&
			condition(cur, v1alpha1.ConditionKafkaReachable) == "True"
		return ok, describe(cur)
	})
	record()
	before := getEC(t, s.Client, ns, name).Status.DesiredReplicas

	s.StopKafka()
	stoppedAt := time.Now()
	eventually(t, 30*time.Second, "KafkaReachable=False while the broker is down", func() (bool, string) {
		cur := getEC(t, s.Client, ns, name)
		return cur != nil && condition(cur, v1alpha1.ConditionKafkaReachable) == "False", describe(cur)
	})
	// Replicas hold through the outage, which outlasts the stabilization
	// window by 25 s.
	for time.Since(stoppedAt) < outage {
		cur := getEC(t, s.Client, ns, name)
		if cur != nil && cur.Status.DesiredReplicas < before {
			t.Fatalf("replicas dropped while Kafka was down: %s (had %d)", describe(cur), before)
		}
		time.Sleep(time.Second)
	}
	if err := s.StartKafka(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "KafkaReachable=True again after the broker returns", func() (bool, string) {
		cur := getEC(t, s.Client, ns, name)
		return cur != nil && condition(cur, v1alpha1.ConditionKafkaReachable) == "True", describe(cur)
	})
	produceN(ctx, t, bootstrap, topic, 500, 200)
	eventually(t, 3*time.Minute, "the handlers rejoin and drain what was produced after the outage", func() (bool, string) {
		cur := getEC(t, s.Client, ns, name)
		record()
		ok := cur != nil && cur.Status.Lag != nil && cur.Status.Lag.Total == 0 && cur.Status.Lag.Members >= 1
		return ok, describe(cur)
	})
	ends := endOffsets(t, bootstrap, topic)
	h, produced := checkAllHandled(t, handledLog, topic, ends)
	if produced != 4500 {
		t.Fatalf("topic holds %d records after the restart, want 4500: the broker lost data", produced)
	}
	t.Logf("%s", fmt.Sprintf("%d produced, %d handled across the outage", produced, h))
}
