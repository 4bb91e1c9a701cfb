//go:build kafka

package kafka

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lagscale/lagscale/internal/testkit"
)

// javaHandlerJar builds examples/java-handler with Maven, once per test
// binary run, and returns the jar.
func javaHandlerJar(t *testing.T) string {
	t.Helper()
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		t.Fatalf("building examples/java-handler needs Maven (mvn) on PATH: install it, then run `make java-handler`")
	}
	root := filepath.Join("..", "..", "examples", "java-handler")
	if out, err := exec.Command(mvn, "-B", "-q", "-f", filepath.Join(root, "pom.xml"), "package").CombinedOutput(); err != nil {
		t.Fatalf("mvn package examples/java-handler (`make java-handler`): %v\n%s", err, out)
	}
	jar, err := filepath.Abs(filepath.Join(root, "target", "java-handler.jar"))
	if err != nil {
		t.Fatal(err)
	}
	return jar
}

// TestJavaHandler runs examples/java-handler, plain kafka-clients, against
// Apache Kafka's SASL_SSL listener through the handler contract: it
// drains and commits on SIGTERM and exits 0, dead-letters poison records,
// and loses nothing when killed with SIGKILL.
func TestJavaHandler(t *testing.T) {
	jar := javaHandlerJar(t)
	a := testkit.StartApache(t, testkit.KafkaVersion)
	testkit.CreateTopics(t, a, 3, "jorders", "jpoison", "jpoison-dlt", "jkill")
	start := func(t *testing.T, topic, group string, env ...string) *testkit.Proc {
		cmd := exec.Command("java", "-Xmx256m", "-jar", jar)
		cmd.Env = append(contractEnv(a, topic, group), env...)
		return testkit.Start(t, cmd)
	}

	t.Run("SIGTERM drains, commits and exits 0", func(t *testing.T) {
		produce(t, a, "jorders", 3, 100)
		log := filepath.Join(t.TempDir(), "handled")
		p := start(t, "jorders", "jorders-g", "WORK_MS=1", "HANDLED_LOG="+log)
		testkit.WaitFor(t, 2*time.Minute, "the Java handler to commit everything", func() bool {
			time.Sleep(200 * time.Millisecond)
			return lagging(t, a, "jorders-g", "jorders") == 0
		})
		p.Signal(t, syscall.SIGTERM)
		if code := p.Wait(t); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0; stdout %q", code, p.Stdout())
		}
		if out := p.Stdout(); !strings.Contains(out, "summary handled=300 failed=0 deadLettered=0") {
			t.Fatalf("summary missing or wrong: %q", out)
		}
		if dups := testkit.EveryRecordHandled(t, testkit.HandledLog(t, log), 3, 100); dups != 0 {
			t.Fatalf("%d records handled twice by one member without a rebalance", dups)
		}
	})

	t.Run("poison records are dead-lettered", func(t *testing.T) {
		produce(t, a, "jpoison", 1, 20) // partition 0 only
		p := start(t, "jpoison", "jpoison-g", "FAIL_EVERY=10", "LAGSCALE_DEAD_LETTER_TOPIC=jpoison-dlt")
		testkit.WaitFor(t, 2*time.Minute, "the Java handler to commit everything", func() bool {
			time.Sleep(200 * time.Millisecond)
			return lagging(t, a, "jpoison-g", "jpoison") == 0
		})
		p.Signal(t, syscall.SIGTERM)
		if code := p.Wait(t); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		if out := p.Stdout(); !strings.Contains(out, "summary handled=18 failed=2 deadLettered=2") {
			t.Fatalf("summary missing or wrong: %q", out)
		}
		cl := testkit.Client(t, a, kgo.ConsumeTopics("jpoison-dlt"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		var offsets []string
		testkit.WaitFor(t, 30*time.Second, "2 dead letters", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				for _, h := range r.Headers {
					if h.Key == "lagscale.original.offset" {
						offsets = append(offsets, string(h.Value))
					}
				}
			})
			return len(offsets) >= 2
		})
		if strings.Join(offsets, ",") != "9,19" {
			t.Fatalf("dead letters of offsets %v, want 9 and 19", offsets)
		}
	})

	t.Run("SIGKILL loses nothing", func(t *testing.T) {
		const parts, per = 3, 500
		produce(t, a, "jkill", parts, per)
		log := filepath.Join(t.TempDir(), "handled")
		first := start(t, "jkill", "jkill-g", "WORK_MS=2", "HANDLED_LOG="+log)
		testkit.WaitFor(t, 2*time.Minute, "the first member to handle some records", func() bool {
			time.Sleep(100 * time.Millisecond)
			return len(testkit.HandledLog(t, log)) >= 200
		})
		first.Signal(t, syscall.SIGKILL)
		first.Wait(t)
		before := len(testkit.HandledLog(t, log))
		if before >= parts*per {
			t.Fatal("the first member finished before it was killed; the test proves nothing")
		}
		second := start(t, "jkill", "jkill-g", "HANDLED_LOG="+log)
		testkit.WaitFor(t, 2*time.Minute, "the second member to commit everything", func() bool {
			time.Sleep(200 * time.Millisecond)
			return lagging(t, a, "jkill-g", "jkill") == 0
		})
		second.Signal(t, syscall.SIGTERM)
		if code := second.Wait(t); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		dups := testkit.EveryRecordHandled(t, testkit.HandledLog(t, log), parts, per)
		t.Logf("Java handler: %d handled before SIGKILL, %d handled again after", before, dups)
	})
}
