package testkit

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// NodeTest runs `node --test` in dir on the given test files (names
// relative to dir, given one by one: given a folder, node 20 would also run
// the fixtures as tests), with env added to the test's environment, and
// fails with node's output when a node test fails. Under -v node's output
// streams to the test's; otherwise its tail is logged.
//
// node runs in a process group of its own, killed by its PID when t's
// deadline is 30 s away, so that the handlers and brokers the node tests
// start go with it.
func NodeTest(t testing.TB, dir string, env []string, files ...string) {
	t.Helper()
	if len(files) == 0 {
		t.Fatal("NodeTest: no test files")
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("node test file: %v", err)
		}
	}
	cmd := exec.Command("node", append([]string{"--test", "--test-concurrency=1", "--test-reporter=spec"}, files...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	w := io.Writer(&out)
	if testing.Verbose() {
		w = io.MultiWriter(&out, os.Stdout)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	wait := 20 * time.Minute
	if tt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := tt.Deadline(); ok {
			wait = time.Until(deadline) - 30*time.Second
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("node --test %v failed after %s: %v\n%s", files, time.Since(began).Round(time.Second), err, out.String())
		}
	case <-time.After(wait):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err := <-done
		t.Fatalf("node --test %v did not finish within %s (killed: %v):\n%s", files, wait, err, out.String())
	}
	t.Logf("node --test %v passed in %s", files, time.Since(began).Round(time.Second))
	if !testing.Verbose() {
		t.Logf("node --test:\n%s", Tail(out.String(), 1500))
	}
}

// Tail is the last n bytes of s, marked "..." when cut: enough of a long
// log to show in a test's output.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
