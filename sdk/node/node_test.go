// Package nodesdk_test runs the Node.js SDK's own tests (node --test
// test/*.test.js) from `go test`, so that `make test` runs them: it installs the
// npm dependencies from the lockfile when they are missing or stale, builds
// hack/kfake for the tests' broker and fails, with node's output, when any
// node test fails. test/kafka runs the same files against Apache Kafka
// (LAGSCALE_TEST_BOOTSTRAP).
package nodesdk_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lagscale/lagscale/internal/testkit"
)

func TestNodeSDK(t *testing.T) {
	testkit.NPMInstall(t, ".")
	kfake := filepath.Join(t.TempDir(), "kfake")
	if out, err := exec.Command("go", "build", "-o", kfake, "../../hack/kfake").CombinedOutput(); err != nil {
		t.Fatalf("building hack/kfake: %v\n%s", err, out)
	}
	files, err := filepath.Glob(filepath.Join("test", "*.test.js"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test/*.test.js files (%v)", err)
	}
	testkit.NodeTest(t, ".", []string{"LAGSCALE_KFAKE=" + kfake}, files...)
}
