//go:build kafka

package kafka

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/lagscale/lagscale/internal/sandbox"
	"github.com/lagscale/lagscale/internal/testkit"
)

// TestSandboxStreamsDemo runs the demo's Kafka Streams phase (`make demo
// KAFKA=apache GROUP_TYPE=streams`) in a sandbox on Apache Kafka: a
// groupType Streams EventConsumer whose handler is
// examples/java-streams-handler with one stream thread, on one input
// partition, so that the topology has two tasks. The burst must scale the
// Deployment from 1 to more than 1 and at most the instances the tasks
// keep busy, then back to 1, and the output topic must count every input
// record exactly once. At most two Streams JVMs run beside the broker.
func TestSandboxStreamsDemo(t *testing.T) {
	wd, _ := os.Getwd()
	root, ok := sandbox.FindRoot(wd)
	if !ok {
		t.Fatal("cannot find the lagscale repository from " + wd)
	}
	// Fails (never skips) without the jars, java, Maven or the sandbox
	// tools, each error naming its make target.
	testkit.KafkaLibs(t, testkit.KafkaVersion)
	streamsHandlerJar(t)
	dir := t.TempDir()
	ctx := context.Background()
	s, err := sandbox.Up(ctx, sandbox.Options{Dir: dir, Root: root, Kafka: sandbox.KafkaApache, Progress: os.Stderr})
	if err != nil {
		t.Fatalf("%v (`make test-kafka` builds the sandbox tools first)", err)
	}
	procs := watchSandboxProcs(t, s, dir)
	procs.record()

	var out bytes.Buffer
	res, err := sandbox.RunDemo(ctx, s, sandbox.DemoOptions{Out: &out, GroupType: sandbox.DemoGroupStreams})
	procs.record()
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}

	// One partition and two subtopologies: two tasks, and one stream
	// thread per instance keeps at most two instances busy.
	if res.ActiveTasks != 2 || res.MaxInstances != 2 {
		t.Fatalf("status showed %d active tasks and %d instances at most: want 2 and 2", res.ActiveTasks, res.MaxInstances)
	}
	// The steady load before the burst is well within one instance: the
	// burst is what scales the Deployment out.
	var most int32
	for _, smp := range res.Samples {
		if smp.At < res.BurstStart && (smp.DesiredReplicas != 1 || smp.Replicas != 1) {
			t.Fatalf("%d desired and %d replicas at %s, before the burst: want 1", smp.DesiredReplicas, smp.Replicas, smp.At)
		}
		most = max(most, smp.DesiredReplicas, smp.Replicas)
	}
	if most < 2 || most > res.MaxInstances {
		t.Fatalf("the burst took the Deployment to %d replicas: want 2..%d (the tasks' bound)", most, res.MaxInstances)
	}
	if !res.BackToMin {
		t.Fatalf("replicas did not return to 1 after the load: last sample %+v", res.Samples[len(res.Samples)-1])
	}
	c := res.Counts
	if c == nil || !c.ExactlyOnce() || c.Input != res.Produced {
		t.Fatalf("counts %+v for %d records produced: want every one counted exactly once", c, res.Produced)
	}
	t.Logf("1 -> %d -> 1 replicas (%d tasks); %d records produced, each counted once over %d values", most, res.ActiveTasks, res.Produced, c.Keys)
}
