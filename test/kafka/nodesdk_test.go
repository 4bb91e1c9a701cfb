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
func TestNodeSDK(t *testing.T) {
	dir := filepath.Join("..", "..", "sdk", "node")
	testkit.NPMInstall(t, dir)
	files := []string{filepath.Join("test", "churn.test.js"), filepath.Join("test", "handler.test.js")}
	for _, c := range []struct {
		version    string
		groupTypes []string
	}{
		{testkit.KafkaVersion, []string{"classic", "consumer"}},
		{testkit.KafkaClassicVersion, []string{"classic"}},
	} {
		t.Run(c.version, func(t *testing.T) {
			a := testkit.StartApache(t, c.version)
			for _, gt := range c.groupTypes {
				t.Run(gt, func(t *testing.T) {
					testkit.NodeTest(t, dir, []string{"LAGSCALE_TEST_BOOTSTRAP=" + a.Plain, "LAGSCALE_TEST_GROUP_TYPE=" + gt}, files...)
				})
			}
		})
	}
}
