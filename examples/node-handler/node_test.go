// Package nodehandler_test runs the Node.js example handler (index.js) as
// real processes against an in-process kfake broker, to show that the
// handler contract and its no-loss guarantees hold for any language.
package nodehandler_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lagscale/lagscale/internal/testkit"
)

func startNode(t *testing.T, env ...string) *testkit.Proc {
	t.Helper()
	cmd := exec.Command("node", "index.js")
	cmd.Env = append(os.Environ(), env...)
	return testkit.Start(t, cmd)
}

// The Node.js example (on sdk/node) consumes franz-go (snappy) batches from kfake,
// commits after processing, and loses nothing while the group shrinks from
// three members to one by SIGTERM; each member exits 0.
func TestNodeHandlerNoLossThreeToOne(t *testing.T) {
	testkit.NPMInstall(t, "../../sdk/node") // the example links it
	testkit.NPMInstall(t, ".")
	const parts, per = 6, 300
	k := testkit.NewKafka(t, parts, "orders")
	k.Produce("orders", parts, per)
	addrs := k.Addrs

	log := filepath.Join(t.TempDir(), "handled")
	env := []string{
		"KAFKA_BOOTSTRAP_SERVERS=" + strings.Join(addrs, ","),
		"KAFKA_TOPICS=orders",
		"KAFKA_CONSUMER_GROUP=g",
		"KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
		"KAFKA_AUTO_OFFSET_RESET=earliest",
		"LAGSCALE_CONSUMER=default/node-example",
		"WORK_MS=2",
		"LAGSCALE_HTTP_ADDR=127.0.0.1:0",
		"HANDLED_LOG=" + log,
	}
	members := []*testkit.Proc{startNode(t, env...), startNode(t, env...), startNode(t, env...)}
	testkit.WaitFor(t, 90*time.Second, "a third of the records handled", func() bool { return len(testkit.HandledLog(t, log)) >= parts*per/3 })
	for _, m := range members[1:] {
		m.Signal(t, syscall.SIGTERM)
		if code := m.Wait(t); code != 0 {
			t.Fatalf("node handler exited %d after SIGTERM, want 0", code)
		}
		if !strings.Contains(m.Stdout(), "summary handled=") {
			t.Errorf("no summary on exit: %q", m.Stdout())
		}
	}
	testkit.WaitFor(t, 90*time.Second, "the last member committed everything", func() bool { return k.Lagging("g", "orders") == 0 })
	members[0].Signal(t, syscall.SIGTERM)
	if code := members[0].Wait(t); code != 0 {
		t.Fatalf("last node handler exited %d after SIGTERM, want 0", code)
	}
	dups := testkit.EveryRecordHandled(t, testkit.HandledLog(t, log), parts, per)
	t.Logf("records=%d duplicates=%d", parts*per, dups)
}
