//go:build e2e

// Package e2e brings the sandbox up in a temporary directory and checks the
// whole loop: Kafka lag -> operator -> Deployment -> kwok pods -> handler
// processes -> commits -> lag drains -> scale down. Run with `make
// test-e2e`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/sandbox"
	"github.com/lagscale/lagscale/internal/testkit"
)

// root is the repository root.
func root(t *testing.T) string {
	wd, _ := os.Getwd()
	r, ok := sandbox.FindRoot(wd)
	if !ok {
		t.Fatal("cannot find the lagscale repository from " + wd)
	}
	return r
}

// requireTools fails (never skips) when the sandbox binaries or the
// Node.js example's dependencies are missing.
func requireTools(t *testing.T, r string) {
	t.Helper()
	requireGoTools(t, r)
	for _, f := range []string{"bin/lagscale", "examples/node-handler/node_modules/@lagscale/handler/package.json", "sdk/node/node_modules/@confluentinc/kafka-javascript/package.json"} {
		if _, err := os.Stat(filepath.Join(r, f)); err != nil {
			t.Fatalf("%s is missing: run `make test-e2e` (it builds the sandbox tools and bin/lagscale first)", f)
		}
	}
}

// requireGoTools fails (never skips) when what an in-process sandbox
// running the Go example handler needs is missing.
func requireGoTools(t *testing.T, r string) {
	t.Helper()
	for _, f := range []string{"bin/kwok", "bin/kwok-stages/pod-ready.yaml", "bin/example-handler", "bin/k8s/" + sandbox.KubernetesVersion + "/kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(r, f)); err != nil {
			t.Fatalf("%s is missing: run `make test-e2e` (it builds the sandbox tools and bin/lagscale first)", f)
		}
	}
}

// eventually polls cond every 500 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last state: %s", what, timeout, last)
}

func getEC(t *testing.T, c client.Client, ns, name string) *v1alpha1.EventConsumer {
	t.Helper()
	ec := &v1alpha1.EventConsumer{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ec); err != nil {
		t.Logf("get EventConsumer: %v", err)
		return nil
	}
	return ec
}

func condition(ec *v1alpha1.EventConsumer, typ string) string {
	for _, c := range ec.Status.Conditions {
		if c.Type == typ {
			return string(c.Status)
		}
	}
	return ""
}

func describe(ec *v1alpha1.EventConsumer) string {
	if ec == nil {
		return "no EventConsumer"
	}
	s := ec.Status
	l := "no lag yet"
	if s.Lag != nil {
		l = fmt.Sprintf("lag=%d timeLag=%.1fs members=%d inflow=%.0f", s.Lag.Total, s.Lag.Seconds, s.Lag.Members, s.Lag.ProductionRate)
	}
	return fmt.Sprintf("replicas=%d ready=%d desired=%d %s kafkaReachable=%s", s.Replicas, s.ReadyReplicas, s.DesiredReplicas, l, condition(ec, v1alpha1.ConditionKafkaReachable))
}

// produceN writes n records to topic at about rate per second.
func produceN(ctx context.Context, t *testing.T, bootstrap, topic string, n int, rate float64) {
	t.Helper()
	// Round robin: every partition gets its share, so the group's capacity
	// is all 12 partitions' and not the few a sticky partitioner picks.
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	start := time.Now()
	for i := 0; i < n; i++ {
		if due := start.Add(time.Duration(float64(i) / rate * float64(time.Second))); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// endOffsets returns the end offset of every partition of topic.
func endOffsets(t *testing.T, bootstrap, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// checkAllHandled reads the handlers' HANDLED_LOG and fails on any
// produced offset that no handler handled. The log belongs to this test's
// one topic.
func checkAllHandled(t *testing.T, path, topic string, ends map[int32]int64) (handled, produced int64) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("open HANDLED_LOG of topic %s: %v", topic, err)
	}
	seen := testkit.HandledLog(t, path)
	for _, n := range seen {
		handled += int64(n)
	}
	var missing []string
	for p, end := range ends {
		produced += end
		for o := int64(0); o < end; o++ {
			if seen[fmt.Sprintf("%d %d", p, o)] == 0 {
				missing = append(missing, fmt.Sprintf("%d/%d", p, o))
			}
		}
	}
	if len(missing) > 0 {
		if len(missing) > 20 {
			missing = append(missing[:20], "...")
		}
		t.Fatalf("%d records were produced but never handled: %v", len(missing), missing)
	}
	return handled, produced
}

// summaries adds up the handlers' exit summaries ("summary handled=N ...")
// from the per-pod logs.
func summaries(t *testing.T, dir string) (handled int64, n int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "pods", "*", "*.log"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "summary ") {
				continue
			}
			n++
			for _, kv := range strings.Fields(line)[1:] {
				if v, ok := strings.CutPrefix(kv, "handled="); ok {
					x, _ := strconv.ParseInt(v, 10, 64)
					handled += x
				}
			}
		}
	}
	return handled, n
}

// alivePIDs returns those of pids whose process still exists (not a zombie).
func alivePIDs(pids []int) []int {
	var out []int
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 0 && f[0] == "Z" {
				continue
			}
		}
		out = append(out, pid)
	}
	return out
}

// handlerPIDs reads the handler processes recorded in DIR/pids.
func handlerPIDs(dir string) []int {
	b, _ := os.ReadFile(filepath.Join(dir, "pids"))
	var out []int
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		if len(fs) == 3 && strings.HasPrefix(fs[0], "handler:") {
			pid, _ := strconv.Atoi(fs[1])
			out = append(out, pid)
		}
	}
	return out
}
