package main

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lagscale/lagscale/internal/testkit"
)

// TestShareGroupChurnLosesNothing runs 50,000 records through a share group
// (KAFKA_GROUP_TYPE=share) of real handler processes on four partitions
// while members come and go: two more than partitions join, one leaves
// with SIGTERM (and exits 0), one is killed with SIGKILL while it holds
// acquired records, another joins. At the end the group has nothing
// unacknowledged and every record was handled at least once: the records
// the killed member held went back to the broker and to the others.
func TestShareGroupChurnLosesNothing(t *testing.T) {
	const parts, per = 4, 12_500
	c := testkit.NewKafka(t, parts, "orders")
	c.Produce("orders", parts, per)
	log := filepath.Join(t.TempDir(), "handled")
	env := []string{"KAFKA_GROUP_TYPE=share", "HANDLED_LOG=" + log, "WORK_JITTER_MS=1"}
	handled := func() int { return len(testkit.HandledLog(t, log)) }
	waitHandled := func(n int) {
		testkit.WaitFor(t, 120*time.Second, "records handled", func() bool { return handled() >= n })
	}

	var members []*testkit.Proc
	for range 3 {
		members = append(members, startExample(t, c, env...))
	}
	waitHandled(5_000)
	for range 3 {
		members = append(members, startExample(t, c, env...)) // six members on four partitions
	}
	waitHandled(15_000)
	members[0].Signal(t, syscall.SIGTERM)
	if code := members[0].Wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	waitHandled(25_000)
	members[1].Signal(t, syscall.SIGKILL)
	members[1].Wait(t)
	if handled() >= parts*per {
		t.Fatal("everything was handled before the SIGKILL; the test proves nothing")
	}
	members = append(members, startExample(t, c, env...))

	testkit.WaitFor(t, 180*time.Second, "every record acknowledged", func() bool { return c.ShareLagging("g", "orders") == 0 })
	for _, m := range members[2:] {
		m.Signal(t, syscall.SIGTERM)
		if code := m.Wait(t); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
	}
	dups := testkit.EveryRecordHandled(t, testkit.HandledLog(t, log), parts, per)
	t.Logf("records=%d members=%d handled more than once=%d", parts*per, len(members), dups)
}
