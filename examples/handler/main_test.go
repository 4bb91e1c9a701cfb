package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lagscale/lagscale/internal/testkit"
)

// These tests run the example as real processes, because what they check
// is about signals: SIGTERM drains and exits 0, SIGKILL loses nothing, a
// second SIGTERM exits at once.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lagscale-example-handler")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "handler")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the example handler (needs the go tool on PATH): %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startExample starts the example as a member of group "g" on topic "orders".
func startExample(t *testing.T, k *testkit.Kafka, env ...string) *testkit.Proc {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(),
		"KAFKA_BOOTSTRAP_SERVERS="+strings.Join(k.Addrs, ","),
		"KAFKA_TOPICS=orders",
		"KAFKA_CONSUMER_GROUP=g",
		"KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
		"KAFKA_AUTO_OFFSET_RESET=earliest",
		"LAGSCALE_CONSUMER=default/example",
		"LAGSCALE_HTTP_ADDR=127.0.0.1:0",
	)
	cmd.Env = append(cmd.Env, env...)
	return testkit.Start(t, cmd)
}

func TestSIGTERMDrainsCommitsAndExitsZero(t *testing.T) {
	c := testkit.NewKafka(t, 3, "orders")
	c.Produce("orders", 3, 100)
	p := startExample(t, c, "WORK_MS=1")
	testkit.WaitFor(t, 60*time.Second, "everything committed", func() bool { return c.Lagging("g", "orders") == 0 })
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if out := p.Stdout(); !strings.Contains(out, "summary handled=300 failed=0 deadLettered=0") {
		t.Fatalf("summary missing or wrong: %q", out)
	}
}

func TestPoisonRecordsAreDeadLettered(t *testing.T) {
	c := testkit.NewKafka(t, 1, "orders", "orders-dlt")
	c.Produce("orders", 1, 20)
	p := startExample(t, c, "FAIL_EVERY=10", "LAGSCALE_DEAD_LETTER_TOPIC=orders-dlt")
	testkit.WaitFor(t, 60*time.Second, "everything committed", func() bool { return c.Lagging("g", "orders") == 0 })
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if out := p.Stdout(); !strings.Contains(out, "summary handled=18 failed=2 deadLettered=2") {
		t.Fatalf("summary missing or wrong: %q", out)
	}
}

// A member killed with SIGKILL mid-batch commits nothing more; another
// member picks its partitions up from the committed offsets and nothing is
// lost.
func TestSIGKILLLosesNothing(t *testing.T) {
	const parts, per = 4, 500
	c := testkit.NewKafka(t, parts, "orders")
	c.Produce("orders", parts, per)
	log := filepath.Join(t.TempDir(), "handled")
	a := startExample(t, c, "WORK_MS=1", "HANDLED_LOG="+log)
	testkit.WaitFor(t, 60*time.Second, "the first member handled some records", func() bool { return len(testkit.HandledLog(t, log)) >= 300 })
	a.Signal(t, syscall.SIGKILL)
	a.Wait(t)
	beforeKill := len(testkit.HandledLog(t, log))
	if beforeKill >= parts*per {
		t.Fatal("the first member finished before it was killed; the test proves nothing")
	}

	b := startExample(t, c, "HANDLED_LOG="+log)
	testkit.WaitFor(t, 60*time.Second, "the second member committed everything", func() bool { return c.Lagging("g", "orders") == 0 })
	b.Signal(t, syscall.SIGTERM)
	if code := b.Wait(t); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	dups := testkit.EveryRecordHandled(t, testkit.HandledLog(t, log), parts, per)
	t.Logf("handled before SIGKILL: %d, handled again after: %d", beforeKill, dups)
}

// A second SIGTERM exits at once with code 2 and commits nothing for the
// record still in flight.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	c := testkit.NewKafka(t, 1, "orders")
	c.Produce("orders", 1, 3)
	port := testkit.FreeAddr(t)
	p := startExample(t, c, "WORK_MS=600000", "LAGSCALE_HTTP_ADDR="+port)
	testkit.WaitFor(t, 60*time.Second, "a record in flight", func() bool {
		return strings.Contains(scrape(port), "lagscale_handler_in_flight_records 1")
	})
	p.Signal(t, syscall.SIGTERM)
	testkit.WaitFor(t, 60*time.Second, "not ready while draining", func() bool {
		r, err := http.Get("http://" + port + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusServiceUnavailable
	})
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t); code != 2 {
		t.Fatalf("exit code %d after a second SIGTERM, want 2", code)
	}
	if lag := c.Lagging("g", "orders"); lag != 3 {
		t.Fatalf("lag %d after a forced exit, want 3 (nothing committed)", lag)
	}
}

func scrape(addr string) string {
	r, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}
