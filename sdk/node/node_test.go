// Package nodesdk_test runs the Node.js SDK's own tests (node --test
// test/*.test.js) from `go test`, so that `make test` runs them: it installs the
// npm dependencies from the lockfile when they are missing or stale, builds
// hack/kfake for the tests' broker and fails, with node's output, when any
// node test fails.
package nodesdk_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lagscale/lagscale/internal/testkit"
)

func TestNodeSDK(t *testing.T) {
	testkit.NPMInstall(t, ".")
	kfake := filepath.Join(t.TempDir(), "kfake")
	if out, err := exec.Command("go", "build", "-o", kfake, "../../hack/kfake").CombinedOutput(); err != nil {
		t.Fatalf("building hack/kfake: %v\n%s", err, out)
	}
	// The test files by name: given a folder, node 20 would also run the
	// fixtures as tests.
	files, err := filepath.Glob(filepath.Join("test", "*.test.js"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test/*.test.js files (%v)", err)
	}
	cmd := exec.Command("node", append([]string{"--test", "--test-concurrency=1", "--test-reporter=spec"}, files...)...)
	cmd.Env = append(os.Environ(), "LAGSCALE_KFAKE="+kfake)
	var out bytes.Buffer
	w := io.Writer(&out)
	if testing.Verbose() {
		w = io.MultiWriter(&out, os.Stdout)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group, so that the handlers and brokers the node
	// tests start go with it if this test is killed by its deadline.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline, ok := t.Deadline()
	wait := 20 * time.Minute
	if ok {
		wait = time.Until(deadline) - 30*time.Second
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("node --test failed: %v\n%s", err, out.String())
		}
	case <-time.After(wait):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("node --test did not finish within %s:\n%s", wait, out.String())
	}
	if !testing.Verbose() {
		t.Logf("node --test:\n%s", tail(out.String(), 1500))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
