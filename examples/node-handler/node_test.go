// Package nodehandler_test runs the Node.js example handler (index.js) as
// real processes against an in-process kfake broker, to show that the
// handler contract and its no-loss guarantees hold for any language.
package nodehandler_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

// installNodeModules makes sure node is installed and node_modules matches
// the lockfile. It fails, never skips, when node or npm is missing.
func installNodeModules(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH: install Node.js 18 or newer with npm (https://nodejs.org/en/download, or `apt-get install nodejs npm`) to run the Node.js example test", tool)
		}
	}
	if _, err := os.Stat(filepath.Join("node_modules", "kafkajs", "package.json")); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in examples/node-handler failed (needs the npm registry or a cache): %v\n%s", err, out)
	}
}

type nodeProc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	exited chan struct{}
}

func startNode(t *testing.T, env ...string) *nodeProc {
	t.Helper()
	p := &nodeProc{cmd: exec.Command("node", "index.js"), exited: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), "KAFKAJS_NO_PARTITIONER_WARNING=1"), env...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = io.Discard
	if testing.Verbose() {
		p.cmd.Stderr = os.Stderr
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.exited })
	return p
}

// term sends SIGTERM and returns the exit code.
func (p *nodeProc) term(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("node handler did not exit after SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

// The Node.js example consumes franz-go (snappy) batches from kfake,
// commits after processing, and loses nothing while the group shrinks from
// three members to one by SIGTERM; each member exits 0.
func TestNodeHandlerNoLossThreeToOne(t *testing.T) {
	installNodeModules(t)
	const parts, per = 6, 300
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()

	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range per {
		for p := range int32(parts) {
			recs = append(recs, &kgo.Record{Topic: "orders", Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)})
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	adm := kadm.NewClient(cl)
	lag := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		offs, err := adm.FetchOffsets(ctx, "g")
		if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			t.Fatal(err)
		}
		var l int64
		for p := range int32(parts) {
			o, ok := offs.Lookup("orders", p)
			at := int64(0)
			if ok && o.Err == nil && o.At > 0 {
				at = o.At
			}
			l += per - at
		}
		return l
	}

	log := filepath.Join(t.TempDir(), "handled")
	env := []string{
		"KAFKA_BOOTSTRAP_SERVERS=" + strings.Join(addrs, ","),
		"KAFKA_TOPICS=orders",
		"KAFKA_CONSUMER_GROUP=g",
		"KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
		"KAFKA_AUTO_OFFSET_RESET=earliest",
		"LAGSCALE_CONSUMER=default/node-example",
		"WORK_MS=2",
		"HANDLED_LOG=" + log,
	}
	members := []*nodeProc{startNode(t, env...), startNode(t, env...), startNode(t, env...)}
	testkit.WaitFor(t, 90*time.Second, "a third of the records handled", func() bool { return len(testkit.HandledLog(t, log)) >= parts*per/3 })
	for _, m := range members[1:] {
		if code := m.term(t); code != 0 {
			t.Fatalf("node handler exited %d after SIGTERM, want 0", code)
		}
		if !strings.Contains(m.stdout.String(), "summary handled=") {
			t.Errorf("no summary on exit: %q", m.stdout.String())
		}
	}
	testkit.WaitFor(t, 90*time.Second, "the last member committed everything", func() bool { return lag() == 0 })
	if code := members[0].term(t); code != 0 {
		t.Fatalf("last node handler exited %d after SIGTERM, want 0", code)
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
	t.Logf("records=%d duplicates=%d", parts*per, dups)
}
