package shard

import (
	"fmt"
	"maps"
	"strconv"
	"testing"
)

func TestBucketOfIsStableAndSpread(t *testing.T) {
	first := BucketOf("uid-1")
	if BucketOf("uid-1") != first {
		t.Fatal("a uid's bucket changed between two calls")
	}
	counts := map[string]int{}
	const n = 100_000
	for i := range n {
		b := BucketOf(fmt.Sprintf("4f1c2a9e-%08d-4b6d-9c1e-0a2b3c4d5e6f", i))
		if v, err := strconv.Atoi(b); err != nil || v < 0 || v >= Buckets {
			t.Fatalf("bucket %q out of range", b)
		}
		counts[b]++
	}
	if len(counts) != Buckets {
		t.Fatalf("%d of %d buckets used", len(counts), Buckets)
	}
	mean := float64(n) / Buckets
	for b, c := range counts {
		if float64(c) < 0.5*mean || float64(c) > 1.5*mean {
			t.Errorf("bucket %s holds %d uids, mean %.0f", b, c, mean)
		}
	}
}

// settle runs the sharder's plan and every owner's acknowledgement until
// nothing changes, as the live system would.
func settle(t *testing.T, tab Table, live []string) Table {
	t.Helper()
	for range 10 {
		next, changed := Plan(tab, live)
		for _, m := range live {
			var acked bool
			next, acked = next.Ack(m, next.Draining(m))
			changed = changed || acked
		}
		if !changed {
			return next
		}
		tab = next
	}
	t.Fatal("the table did not settle in 10 rounds")
	return nil
}

func TestPlanHandsOverThroughTheOwner(t *testing.T) {
	tab, changed := Plan(NewTable(), []string{"a"})
	if !changed || tab.Shares()["a"] != Buckets {
		t.Fatalf("one member: shares %v, want all %d buckets for a", tab.Shares(), Buckets)
	}
	if again, changed := Plan(tab, []string{"a"}); changed || !equal(again, tab) {
		t.Fatal("a settled table changed without a membership change")
	}

	// b joins: a is asked to drain b's share, and keeps it until it acks.
	joined, changed := Plan(tab, []string{"a", "b"})
	if !changed {
		t.Fatal("a join changed nothing")
	}
	draining := joined.Draining("a")
	if len(draining) == 0 || len(joined.Owned("b")) != 0 {
		t.Fatalf("after b joined: a drains %d buckets, b owns %d; want some drained and none owned before the ack", len(draining), len(joined.Owned("b")))
	}
	for b := range draining {
		i, _ := strconv.Atoi(b)
		if joined[i].DrainTo != "b" {
			t.Fatalf("bucket %s drains to %q, want b", b, joined[i].DrainTo)
		}
	}
	if next, _ := Plan(joined, []string{"a", "b"}); !equal(next, joined) {
		t.Fatal("the sharder moved a draining bucket before its owner acknowledged")
	}
	acked, _ := joined.Ack("a", draining)
	given, _ := Plan(acked, []string{"a", "b"})
	if got := len(given.Owned("b")); got != len(draining) {
		t.Fatalf("b owns %d buckets after the ack, want the %d drained", got, len(draining))
	}
	if got := len(given.Owned("a")); got != Buckets-len(draining) {
		t.Fatalf("a owns %d buckets after the hand-over, want %d", got, Buckets-len(draining))
	}

	// b dies: its buckets go back to a at once, with no drain.
	dead, _ := Plan(given, []string{"a"})
	if dead.Shares()["a"] != Buckets || len(dead.Draining("a")) != 0 {
		t.Fatalf("after b died: shares %v, a draining %d; want all for a at once", dead.Shares(), len(dead.Draining("a")))
	}
}

func TestPlanMovesOnlyTheChangedShare(t *testing.T) {
	three := settle(t, NewTable(), []string{"a", "b", "c"})
	two := settle(t, three, []string{"a", "b"})
	for b := range Buckets {
		if three[b].Owner != "c" && two[b].Owner != three[b].Owner {
			t.Fatalf("bucket %d moved from %s to %s when only c left", b, three[b].Owner, two[b].Owner)
		}
	}
	four := settle(t, three, []string{"a", "b", "c", "d"})
	for b := range Buckets {
		if four[b].Owner != "d" && four[b].Owner != three[b].Owner {
			t.Fatalf("bucket %d moved from %s to %s when d joined", b, three[b].Owner, four[b].Owner)
		}
	}
}

// TestSharesStayNearEqual: with three members of any names, no member owns
// more than 40% of the buckets.
func TestSharesStayNearEqual(t *testing.T) {
	for i := range 200 {
		members := []string{fmt.Sprintf("lagscale-%d-x", i), fmt.Sprintf("lagscale-%d-y", i), fmt.Sprintf("lagscale-%d-z", i)}
		tab, _ := Plan(NewTable(), members)
		for m, n := range tab.Shares() {
			if n > Buckets*4/10 {
				t.Fatalf("members %v: %s owns %d of %d buckets", members, m, n, Buckets)
			}
		}
	}
}

func TestTableEncodeDecode(t *testing.T) {
	tab := NewTable()
	tab[0] = Entry{Owner: "a"}
	tab[7] = Entry{Owner: "a", DrainTo: "b"}
	tab[1023] = Entry{Owner: "c"}
	data := tab.Encode()
	if want := map[string]string{"0": "a", "7": "a>b", "1023": "c"}; !maps.Equal(data, want) {
		t.Fatalf("encoded %v, want %v", data, want)
	}
	for labels, want := range map[string]string{"0": "a", "7": "a", "1023": "c", "5": "", "x": "", "": "", "2000": ""} {
		if got := tab.OwnerOf(map[string]string{LabelBucket: labels}); got != want {
			t.Errorf("OwnerOf(bucket %q) = %q, want %q", labels, got, want)
		}
	}
	if got := tab.HandingOver(); got != 1 {
		t.Errorf("HandingOver() = %d, want 1", got)
	}
	back, err := Decode(data)
	if err != nil || !equal(back, tab) {
		t.Fatalf("decoded %v, %v", back, err)
	}
	for _, bad := range []map[string]string{{"x": "a"}, {"1024": "a"}, {"-1": "a"}, {"3": ">b"}} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%v) took a table lagscale never writes", bad)
		}
	}
}

func TestSelector(t *testing.T) {
	if got := Selector(nil); len(got) != 1 || got[0] != "none" {
		t.Fatalf("empty selector %v", got)
	}
	got := Selector(map[string]bool{"10": true, "9": true, "100": true})
	if fmt.Sprint(got) != "[9 10 100]" {
		t.Fatalf("selector %v, want numeric order", got)
	}
}

func equal(a, b Table) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
