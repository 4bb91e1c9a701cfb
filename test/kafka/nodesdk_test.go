//go:build kafka

package kafka

import (
	"path/filepath"
	"testing"

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
