// Package testkit holds small helpers that tests of handler processes
// share: a bounded wait and the reader of the example handler's
// HANDLED_LOG.
package testkit

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// WaitFor polls cond until it is true, failing the test with what after
// wait.
func WaitFor(t testing.TB, wait time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", wait, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// HandledLog reads a HANDLED_LOG file (lines "topic partition offset") into
// the number of times each "partition offset" was handled. A missing file
// means nothing was handled yet.
func HandledLog(t testing.TB, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]int{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) == 3 {
			seen[f[1]+" "+f[2]]++
		}
	}
	return seen
}
