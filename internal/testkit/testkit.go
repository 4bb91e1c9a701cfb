// Package testkit holds small helpers that tests of handler processes
// share: a bounded wait, the reader of the example handler's HANDLED_LOG,
// a one-broker kfake cluster and a process started and stopped by the
// test.
package testkit

import (
	"bufio"
	"errors"
	"os"
	"strconv"
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

// EveryRecordHandled fails the test unless the HANDLED_LOG counts in seen
// hold every offset 0..per-1 of partitions 0..parts-1, and returns how
// many were handled more than once.
func EveryRecordHandled(t testing.TB, seen map[string]int, parts, per int) (duplicates int) {
	t.Helper()
	for p := range parts {
		for o := range per {
			n := seen[strconv.Itoa(p)+" "+strconv.Itoa(o)]
			if n == 0 {
				t.Fatalf("partition %d offset %d was never handled", p, o)
			}
			duplicates += n - 1
		}
	}
	return duplicates
}
