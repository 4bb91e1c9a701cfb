//go:build kafka

package kafka

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/internal/testkit"
)

// buildGo builds the Go package pkg into a temporary binary.
func buildGo(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// contractEnv is the handler contract for group on topic over the
// broker's SASL_SSL listener, as the operator would inject it.
func contractEnv(a *testkit.Apache, topic, group string) []string {
	return append(os.Environ(),
		"KAFKA_BOOTSTRAP_SERVERS="+a.SASLSSL,
		"KAFKA_TOPICS="+topic,
		"KAFKA_CONSUMER_GROUP="+group,
		"KAFKA_SECURITY_PROTOCOL=SASL_SSL",
		"KAFKA_SASL_MECHANISM="+testkit.ScramMechanism,
		"KAFKA_SASL_USERNAME="+a.User,
		"KAFKA_SASL_PASSWORD="+a.Password,
		"KAFKA_TLS_CA_FILE="+a.CAFile,
		"KAFKA_AUTO_OFFSET_RESET=earliest",
		"LAGSCALE_CONSUMER=compat/"+group,
	)
}

// lagging is the group's lag on topic by kadm's offsets (a partition
// without a commit counts from its start), or -1 while the offsets cannot
// be read (a fresh cluster's coordinator is not available at first).
func lagging(t *testing.T, b testkit.Broker, group, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := b.Admin()
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil || starts.Error() != nil {
		return -1
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		return -1
	}
	commits, err := adm.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return -1
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		from := starts[o.Topic][o.Partition].Offset
		if c, ok := commits.Lookup(o.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
			from = c.At
		}
		total += max(o.Offset-from, 0)
	})
	return total
}

// handledCount waits, checking every half second (the log grows to 100,000
// lines), until the HANDLED_LOG holds at least n distinct records.
func handledCount(t *testing.T, log string, n int, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := len(testkit.HandledLog(t, log))
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d distinct records handled after %s, want %d", got, wait, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestSDKChurnLosesNothing runs the Go SDK's example handler as processes
// on Apache Kafka's SASL_SSL listener: 100,000 records through 3, 6, 2 and
// 5 members, scaled in with SIGTERM and once with SIGKILL. Every record is
// handled, the group commits the end of every partition, and the
// duplicates (records handled again after the SIGKILL or a rebalance) are
// counted.
func TestSDKChurnLosesNothing(t *testing.T) {
	const parts, per = 10, 10_000
	const total = parts * per
	a := testkit.StartApache(t, testkit.KafkaVersion)
	testkit.CreateTopics(t, a, parts, "churn")
	bin := buildGo(t, "github.com/lagscale/lagscale/examples/handler")
	produceFast(t, a, "churn", parts, per)

	log := filepath.Join(t.TempDir(), "handled")
	env := append(contractEnv(a, "churn", "churn-g"), "WORK_MS=1", "CONCURRENCY=4", "HANDLED_LOG="+log, "LAGSCALE_HTTP_ADDR=127.0.0.1:0")
	var members []*testkit.Proc
	spawn := func(n int) {
		for range n {
			cmd := exec.Command(bin)
			cmd.Env = env
			members = append(members, testkit.Start(t, cmd))
		}
	}
	term := func(n int, kill bool) {
		for range n {
			m := members[len(members)-1]
			members = members[:len(members)-1]
			sig := syscall.SIGTERM
			if kill {
				sig, kill = syscall.SIGKILL, false
			}
			m.Signal(t, sig)
			code := m.Wait(t)
			if sig == syscall.SIGTERM && code != 0 {
				t.Fatalf("member exited %d after SIGTERM, want 0\n%s", code, m.Stdout())
			}
		}
	}
	began := time.Now()
	spawn(3)
	handledCount(t, log, total/5, 3*time.Minute)
	spawn(3) // 6
	handledCount(t, log, 2*total/5, 3*time.Minute)
	term(4, true) // 2: one SIGKILL, three SIGTERM
	handledCount(t, log, 3*total/5, 3*time.Minute)
	spawn(3) // 5
	testkit.WaitFor(t, 5*time.Minute, "the group to commit the end of every partition", func() bool {
		time.Sleep(500 * time.Millisecond)
		return lagging(t, a, "churn-g", "churn") == 0
	})
	term(len(members), false)
	dups := testkit.EveryRecordHandled(t, testkit.HandledLog(t, log), parts, per)
	t.Logf("SDK churn on Apache Kafka %s (SASL_SSL): %d records through 3, 6, 2, 5 members (3 SIGTERM + 1 SIGKILL in, 5 SIGTERM at the end) in %s, all committed, %d handled twice",
		a.Version, total, time.Since(began).Round(time.Second), dups)
}

// produceFast writes per records to each of parts partitions, value
// "<partition>-<i>", in large batches.
func produceFast(t *testing.T, b testkit.Broker, topic string, parts int32, per int) {
	t.Helper()
	cl := testkit.Client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(1<<20))
	ctx := context.Background()
	errs := make(chan error, 1)
	for p := range parts {
		for range per {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(topic)}, func(_ *kgo.Record, err error) {
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		t.Fatalf("producing: %v", err)
	default:
	}
}
