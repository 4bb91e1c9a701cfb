//go:build kafka

package kafka

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lagscale/lagscale/internal/testkit"
)

// TestNodeSDK runs the Node.js SDK's own tests (sdk/node/test, the files
// `go test ./sdk/node/` runs on kfake) against Apache Kafka's PLAINTEXT
// listener: the churn (20,000 records on 8 partitions, 3 -> 5 -> 2
// members with SIGTERM and one SIGKILL: all committed, none lost,
// duplicates counted and printed as "# churn: ..."), the dead-letter
// topic, the stall, the drain and the shutdown deadline. On 4.x once with
// classic groups and once with KIP-848 consumer groups, on 3.9 with
// classic groups (its consumer protocol was a preview, off by default).
//
// The churn runs once more on 4.x with cooperative-sticky, the assignor
// the SDK does not use by default because against kfake the second
// cooperative round sometimes never handed the new members their
// partitions: here it shows whether Apache Kafka does.
func TestNodeSDK(t *testing.T) {
	dir := filepath.Join("..", "..", "sdk", "node")
	testkit.NPMInstall(t, dir)
	churn := filepath.Join("test", "churn.test.js")
	handler := filepath.Join("test", "handler.test.js")
	type run struct {
		name, groupType, assignor string
		files                     []string
	}
	for _, c := range []struct {
		version string
		runs    []run
	}{
		{testkit.KafkaVersion, []run{
			{"classic", "classic", "", []string{churn, handler}},
			{"consumer", "consumer", "", []string{churn, handler}},
			{"classic-cooperative-sticky", "classic", "cooperative-sticky", []string{churn}},
		}},
		{testkit.KafkaClassicVersion, []run{
			{"classic", "classic", "", []string{churn, handler}},
		}},
	} {
		t.Run(c.version, func(t *testing.T) {
			a := testkit.StartApache(t, c.version)
			for _, r := range c.runs {
				t.Run(r.name, func(t *testing.T) {
					env := []string{"LAGSCALE_TEST_BOOTSTRAP=" + a.Plain, "LAGSCALE_TEST_GROUP_TYPE=" + r.groupType}
					if r.assignor != "" {
						env = append(env, "LAGSCALE_TEST_ASSIGNOR="+r.assignor)
					}
					testkit.NodeTest(t, dir, env, r.files...)
				})
			}
		})
	}
}

// TestNodeHandlerOverSASLSSL runs examples/node-handler (on the SDK) from
// the contract environment the operator injects, over Apache Kafka's
// SASL_SSL listener with SCRAM-SHA-512 and the CA file: it handles and
// commits every record and drains on SIGTERM. With a wrong password it
// handles nothing, logs that authentication failed, exits non-zero, and
// prints neither password.
func TestNodeHandlerOverSASLSSL(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "node-handler")
	testkit.NPMInstall(t, dir)
	a := testkit.StartApache(t, testkit.KafkaVersion)
	const topic, parts, per = "nsecure", 3, 200
	testkit.CreateTopics(t, a, parts, topic)
	produce(t, a, topic, parts, per)
	start := func(t *testing.T, group string, env ...string) *testkit.Proc {
		// exec keeps the PID the node process's; stderr, where the SDK
		// logs, joins stdout so that the test reads both.
		cmd := exec.Command("sh", "-c", "exec node index.js 2>&1")
		cmd.Dir = dir
		cmd.Env = append(contractEnv(a, topic, group), "LAGSCALE_HTTP_ADDR="+testkit.FreeAddr(t))
		cmd.Env = append(cmd.Env, env...) // later entries win
		return testkit.Start(t, cmd)
	}

	t.Run("handles and commits everything", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "handled")
		p := start(t, "nsecure-g", "HANDLED_LOG="+log)
		testkit.WaitFor(t, 2*time.Minute, "the Node.js handler to commit everything over SASL_SSL", func() bool {
			time.Sleep(200 * time.Millisecond)
			return lagging(t, a, "nsecure-g", topic) == 0
		})
		p.Signal(t, syscall.SIGTERM)
		if code := p.Wait(t); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0; output %s", code, p.Stdout())
		}
		if out := p.Stdout(); !strings.Contains(out, fmt.Sprintf("summary handled=%d failed=0", parts*per)) {
			t.Fatalf("summary missing or wrong: %s", out)
		}
		if dups := testkit.EveryRecordHandled(t, testkit.HandledLog(t, log), parts, per); dups != 0 {
			t.Fatalf("%d records handled twice by one member without a rebalance", dups)
		}
	})

	t.Run("a wrong password handles nothing and is never printed", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "handled")
		wrong := "wrong-" + a.Password
		p := start(t, "nsecure-bad", "KAFKA_SASL_PASSWORD="+wrong, "HANDLED_LOG="+log)
		// The SDK gives up connecting after its 30 s connect timeout and
		// exits non-zero, so that the pod restarts visibly.
		if code := p.Wait(t); code == 0 {
			t.Fatalf("exit code 0 with a wrong password; output %s", p.Stdout())
		}
		out := p.Stdout()
		if !strings.Contains(out, "authentication failure") {
			t.Fatalf("the output does not say that authentication failed: %s", out)
		}
		if strings.Contains(out, wrong) || strings.Contains(out, a.Password) {
			t.Fatalf("the output holds a password: %s", out)
		}
		if n := len(testkit.HandledLog(t, log)); n != 0 {
			t.Fatalf("%d records handled with a wrong password", n)
		}
	})
}
