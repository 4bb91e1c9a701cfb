package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

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

type cluster struct {
	t     *testing.T
	addrs []string
	adm   *kadm.Client
}

func newCluster(t *testing.T, parts int32, topics ...string) *cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, topics...))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &cluster{t: t, addrs: c.ListenAddrs(), adm: kadm.NewClient(cl)}
}

func (c *cluster) produce(topic string, parts int32, per int) {
	c.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for i := range per {
		for p := range parts {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)})
		}
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		c.t.Fatalf("producing: %v", err)
	}
}

// lagging returns how many records of topic the group has not committed.
func (c *cluster) lagging(group, topic string) int64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := c.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		c.t.Fatal(err)
	}
	committed := map[int32]int64{}
	os, err := c.adm.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		c.t.Fatal(err)
	}
	os.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			committed[o.Partition] = o.At
		}
	})
	var lag int64
	ends.Each(func(o kadm.ListedOffset) { lag += o.Offset - committed[o.Partition] })
	return lag
}

type proc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	exited chan struct{}
	err    error
}

func (c *cluster) run(t *testing.T, env ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(),
		"KAFKA_BOOTSTRAP_SERVERS="+strings.Join(c.addrs, ","),
		"KAFKA_TOPICS=orders",
		"KAFKA_CONSUMER_GROUP=g",
		"KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
		"KAFKA_AUTO_OFFSET_RESET=earliest",
		"LAGSCALE_CONSUMER=default/example",
		"LAGSCALE_HTTP_ADDR=127.0.0.1:0",
	)
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = io.Discard
	if testing.Verbose() {
		p.cmd.Stderr = os.Stderr
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting the example: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.exited })
	return p
}

// wait returns the exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("the example did not exit")
	}
	return p.cmd.ProcessState.ExitCode()
}

func TestSIGTERMDrainsCommitsAndExitsZero(t *testing.T) {
	c := newCluster(t, 3, "orders")
	c.produce("orders", 3, 100)
	p := c.run(t, "WORK_MS=1")
	testkit.WaitFor(t, 60*time.Second, "everything committed", func() bool { return c.lagging("g", "orders") == 0 })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if out := p.stdout.String(); !strings.Contains(out, "summary handled=300 failed=0 deadLettered=0") {
		t.Fatalf("summary missing or wrong: %q", out)
	}
}

func TestPoisonRecordsAreDeadLettered(t *testing.T) {
	c := newCluster(t, 1, "orders", "orders-dlt")
	c.produce("orders", 1, 20)
	p := c.run(t, "FAIL_EVERY=10", "LAGSCALE_DEAD_LETTER_TOPIC=orders-dlt")
	testkit.WaitFor(t, 60*time.Second, "everything committed", func() bool { return c.lagging("g", "orders") == 0 })
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if out := p.stdout.String(); !strings.Contains(out, "summary handled=18 failed=2 deadLettered=2") {
		t.Fatalf("summary missing or wrong: %q", out)
	}
}

// A member killed with SIGKILL mid-batch commits nothing more; another
// member picks its partitions up from the committed offsets and nothing is
// lost.
func TestSIGKILLLosesNothing(t *testing.T) {
	const parts, per = 4, 500
	c := newCluster(t, parts, "orders")
	c.produce("orders", parts, per)
	log := filepath.Join(t.TempDir(), "handled")
	a := c.run(t, "WORK_MS=1", "HANDLED_LOG="+log)
	testkit.WaitFor(t, 60*time.Second, "the first member handled some records", func() bool { return len(testkit.HandledLog(t, log)) >= 300 })
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.wait(t)
	beforeKill := len(testkit.HandledLog(t, log))
	if beforeKill >= parts*per {
		t.Fatal("the first member finished before it was killed; the test proves nothing")
	}

	b := c.run(t, "HANDLED_LOG="+log)
	testkit.WaitFor(t, 60*time.Second, "the second member committed everything", func() bool { return c.lagging("g", "orders") == 0 })
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.wait(t); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	seen := testkit.HandledLog(t, log)
	dups := 0
	for p := range parts {
		for o := range per {
			n := seen[fmt.Sprintf("%d %d", p, o)]
			if n == 0 {
				t.Fatalf("partition %d offset %d was never handled", p, o)
			}
			dups += n - 1
		}
	}
	t.Logf("handled before SIGKILL: %d, handled again after: %d", beforeKill, dups)
}

// A second SIGTERM exits at once with code 2 and commits nothing for the
// record still in flight.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	c := newCluster(t, 1, "orders")
	c.produce("orders", 1, 3)
	port := freePort(t)
	p := c.run(t, "WORK_MS=600000", "LAGSCALE_HTTP_ADDR="+port)
	testkit.WaitFor(t, 60*time.Second, "a record in flight", func() bool {
		return strings.Contains(scrape(port), "lagscale_handler_in_flight_records 1")
	})
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	testkit.WaitFor(t, 60*time.Second, "not ready while draining", func() bool {
		r, err := http.Get("http://" + port + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusServiceUnavailable
	})
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 2 {
		t.Fatalf("exit code %d after a second SIGTERM, want 2", code)
	}
	if lag := c.lagging("g", "orders"); lag != 3 {
		t.Fatalf("lag %d after a forced exit, want 3 (nothing committed)", lag)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
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
