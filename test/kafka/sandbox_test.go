//go:build kafka

package kafka

import (
	"context"
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

// TestSandboxOnApacheKafka brings the sandbox up with Options.Kafka
// "apache" (what `lagscale sandbox up --kafka apache` does): the broker is
// the Apache Kafka JVM, recorded in DIR/pids; a topic is created on it; the
// operator reads the demo consumer's lag from it and the handler pods drain
// it; and Stop leaves none of the recorded processes behind.
func TestSandboxOnApacheKafka(t *testing.T) {
	wd, _ := os.Getwd()
	root, ok := sandbox.FindRoot(wd)
	if !ok {
		t.Fatal("cannot find the lagscale repository from " + wd)
	}
	// Fails (never skips) without the jars, java or the sandbox tools,
	// each error naming its make target.
	testkit.KafkaLibs(t, testkit.KafkaVersion)
	dir := t.TempDir()
	ctx := context.Background()
	s, err := sandbox.Up(ctx, sandbox.Options{Dir: dir, Root: root, Kafka: sandbox.KafkaApache, Progress: os.Stderr})
	if err != nil {
		t.Fatalf("%v (`make test-kafka` builds the sandbox tools first)", err)
	}
	procs := watchSandboxProcs(t, s, dir)
	procs.record()
	checkBrokerIsApacheKafka(t, procs.seen)

	const ns, name, topic, parts, records = "default", "apache-demo", "apache-orders", 4, 600
	bootstrap := s.KafkaAddr()
	// What the demo does first, on a broker that has just started: Apache
	// Kafka answers COORDINATOR_NOT_AVAILABLE until __consumer_offsets
	// exists, which must be waited out, not fail the demo.
	if c, err := sandbox.GroupCommitted(ctx, bootstrap, name+"-handler", topic); err != nil || c != 0 {
		t.Fatalf("a new group's commits on a fresh Apache Kafka: %d, %v; want 0, nil", c, err)
	}
	// The backlog is there before the consumer: its first lag reading
	// cannot be 0.
	produceBacklog(ctx, t, bootstrap, topic, parts, records)
	ec := sandbox.DemoConsumer(sandbox.DemoOptions{Namespace: ns, Name: name, Topic: topic, Partitions: parts, WorkMS: 10, PollIntervalSeconds: 2, ScaleDownStabilizationSeconds: 10}, bootstrap)
	if err := s.Client.Create(ctx, ec); err != nil {
		t.Fatal(err)
	}
	get := func() *v1alpha1.EventConsumer {
		cur := &v1alpha1.EventConsumer{}
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cur); err != nil {
			return nil
		}
		return cur
	}
	var first int64 = -1
	testkit.WaitFor(t, 2*time.Minute, "the operator reads the group's lag from Apache Kafka", func() bool {
		cur := get()
		if cur == nil || cur.Status.Lag == nil {
			return false
		}
		first = cur.Status.Lag.Total
		return true
	})
	if first <= 0 || first > records {
		t.Fatalf("first lag read from Apache Kafka is %d, want 1..%d (%d records were waiting)", first, records, records)
	}
	t.Logf("first lag read from Apache Kafka: %d", first)
	testkit.WaitFor(t, 3*time.Minute, "the handler pods drain the topic on Apache Kafka and the status shows lag 0", func() bool {
		procs.record()
		cur := get()
		return cur != nil && cur.Status.Lag != nil && cur.Status.Lag.Total == 0 && cur.Status.Lag.Members >= 1
	})
	committed, err := sandbox.GroupCommitted(ctx, bootstrap, ec.Spec.ConsumerGroup, topic)
	if err != nil || committed != records {
		t.Fatalf("group %s committed %d on Apache Kafka (err %v), want %d", ec.Spec.ConsumerGroup, committed, err, records)
	}
	procs.record()
}

// sandboxProcs are the processes a sandbox recorded in DIR/pids, by PID,
// as far as the test has seen them.
type sandboxProcs struct {
	t    *testing.T
	dir  string
	seen map[int]string
}

// record adds what DIR/pids lists now.
func (p *sandboxProcs) record() {
	for pid, name := range recordedProcs(p.t, p.dir) {
		p.seen[pid] = name
	}
}

// watchSandboxProcs registers a cleanup that stops the sandbox and fails
// the test if any process it saw still runs or DIR/pids still lists one.
func watchSandboxProcs(t *testing.T, s *sandbox.Sandbox, dir string) *sandboxProcs {
	p := &sandboxProcs{t: t, dir: dir, seen: map[int]string{}}
	t.Cleanup(func() {
		p.record()
		for _, line := range s.Stop() {
			t.Log("stopped", line)
		}
		for pid, name := range p.seen {
			if pid != os.Getpid() && processAlive(pid) {
				t.Errorf("%s (pid %d) still runs after Stop", name, pid)
			}
		}
		if left, _ := sandbox.RecordedPIDs(dir); len(left) > 0 {
			t.Errorf("DIR/pids still lists %v after Stop", left)
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "logs", "kafka.log"))
			t.Logf("Apache Kafka log:\n%s", tail(string(b), 100))
		}
	})
	return p
}

// checkBrokerIsApacheKafka: the broker is the Apache Kafka JVM, and
// DIR/pids has it.
func checkBrokerIsApacheKafka(t *testing.T, seen map[int]string) {
	kafkaPID := 0
	for pid, name := range seen {
		if name == "kafka" {
			kafkaPID = pid
		}
	}
	if kafkaPID == 0 {
		t.Fatalf("DIR/pids has no kafka entry: %v", seen)
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(kafkaPID) + "/cmdline")
	if !strings.Contains(string(cmdline), "kafka.Kafka") || !strings.Contains(string(cmdline), filepath.Join("kafka", testkit.KafkaVersion, "libs")) {
		t.Fatalf("pid %d recorded as kafka is not Apache Kafka %s: %q", kafkaPID, testkit.KafkaVersion, strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
}

// produceBacklog creates topic with parts partitions on the broker and
// produces records records to it, round robin.
func produceBacklog(ctx context.Context, t *testing.T, bootstrap, topic string, parts int32, records int) {
	if err := sandbox.CreateTopic(ctx, bootstrap, topic, parts); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil || td[topic].Err != nil || len(td[topic].Partitions) != int(parts) {
		t.Fatalf("topic %s on Apache Kafka: %v %+v", topic, err, td[topic])
	}
	for i := 0; i < records; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// recordedProcs reads DIR/pids (NAME PID STARTTIME per line) into names
// by PID.
func recordedProcs(t *testing.T, dir string) map[int]string {
	t.Helper()
	out := map[int]string{}
	b, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && !strings.HasPrefix(f[0], "#") {
			pid, _ := strconv.Atoi(f[1])
			out[pid] = f[0]
		}
	}
	return out
}

// processAlive reports whether pid runs and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 0 && f[0] == "Z" {
			return false
		}
	}
	return true
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
