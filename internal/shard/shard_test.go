package shard

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestLive(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	d := 10 * time.Second
	tests := []struct {
		name    string
		members []Member
		want    []string
	}{
		{name: "none", want: nil},
		{name: "renewed within its duration", members: []Member{{Name: "b", RenewTime: now.Add(-9 * time.Second), Duration: d}, {Name: "a", RenewTime: now, Duration: d}}, want: []string{"a", "b"}},
		{name: "expired exactly at its duration", members: []Member{{Name: "a", RenewTime: now.Add(-d), Duration: d}}, want: nil},
		{name: "expired long ago", members: []Member{{Name: "a", RenewTime: now.Add(-time.Hour), Duration: d}, {Name: "b", RenewTime: now, Duration: d}}, want: []string{"b"}},
		{name: "released: no holder", members: []Member{{Name: "", RenewTime: now, Duration: d}}, want: nil},
		{name: "never renewed", members: []Member{{Name: "a", Duration: d}}, want: nil},
		{name: "one holder in two Leases counts once", members: []Member{{Name: "a", RenewTime: now, Duration: d}, {Name: "a", RenewTime: now, Duration: d}}, want: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Live(tt.members, now); !slices.Equal(got, tt.want) {
				t.Fatalf("Live = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGone(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	d := 15 * time.Second
	tests := []struct {
		name string
		m    Member
		want bool
	}{
		{name: "live", m: Member{Name: "a", RenewTime: now.Add(-5 * time.Second), Duration: d}, want: false},
		{name: "just expired: its consumers move, the Lease stays", m: Member{Name: "a", RenewTime: now.Add(-d - time.Second), Duration: d}, want: false},
		{name: "expired by exactly another duration", m: Member{Name: "a", RenewTime: now.Add(-2 * d), Duration: d}, want: false},
		{name: "expired longer ago than another duration", m: Member{Name: "a", RenewTime: now.Add(-2*d - time.Second), Duration: d}, want: true},
		{name: "released: no holder", m: Member{RenewTime: now, Duration: d}, want: true},
		{name: "released: no renewal", m: Member{Name: "a", Duration: d}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Gone(tt.m, now); got != tt.want {
				t.Fatalf("Gone = %t, want %t", got, tt.want)
			}
			if tt.want && slices.Contains(Live([]Member{tt.m}, now), tt.m.Name) {
				t.Fatalf("a gone member is live")
			}
		})
	}
}

func uids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("6f1c2d3e-%04d-4a5b-9c8d-%012d", i, i*7919)
	}
	return out
}

// TestAssignMovesOnlyTheChangedShare: a joining member takes objects only
// from the others and only for itself; a leaving member's objects, and
// only those, go to the others; and the split is even enough for a
// replica to hold well under 40% of 3 members' objects.
func TestAssignMovesOnlyTheChangedShare(t *testing.T) {
	objs := uids(3000)
	tests := []struct {
		name          string
		before, after []string
	}{
		{name: "a third joins", before: []string{"lagscale-0", "lagscale-1"}, after: []string{"lagscale-0", "lagscale-1", "lagscale-2"}},
		{name: "a first joins", before: nil, after: []string{"lagscale-0"}},
		{name: "one of three leaves", before: []string{"lagscale-0", "lagscale-1", "lagscale-2"}, after: []string{"lagscale-0", "lagscale-2"}},
		{name: "the last leaves", before: []string{"lagscale-0"}, after: nil},
		{name: "one leaves and one joins", before: []string{"a", "b", "c"}, after: []string{"a", "c", "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, uid := range objs {
				from, to := Assign(uid, tt.before), Assign(uid, tt.after)
				if from == to {
					continue
				}
				left := from != "" && !slices.Contains(tt.after, from)
				joined := to != "" && !slices.Contains(tt.before, to)
				if !left && !joined {
					t.Fatalf("%s moved from %q to %q, and neither joined nor left", uid, from, to)
				}
			}
		})
	}
	share := map[string]int{}
	three := []string{"lagscale-0", "lagscale-1", "lagscale-2"}
	for _, uid := range objs {
		share[Assign(uid, three)]++
	}
	for _, m := range three {
		if f := float64(share[m]) / float64(len(objs)); f < 0.28 || f > 0.38 {
			t.Errorf("%s owns %.1f%% of the objects, want about a third: %v", m, 100*f, share)
		}
	}
}

// TestNext is the hand-over: an object moves between two live members only
// through a drain that the owner acknowledges by removing the labels.
func TestNext(t *testing.T) {
	live := []string{"a", "b", "c"}
	// Find a uid that belongs to each member.
	owned := map[string]string{}
	for _, uid := range uids(100) {
		if m := Assign(uid, live); owned[m] == "" {
			owned[m] = uid
		}
	}
	tests := []struct {
		name       string
		owner      string
		draining   bool
		live       []string
		uid        string
		wantAction Action
		wantTo     string
	}{
		{name: "no live member keeps the labels", owner: "a", live: nil, uid: owned["b"], wantAction: Keep},
		{name: "a new object is assigned", owner: "", live: live, uid: owned["b"], wantAction: Set, wantTo: "b"},
		{name: "at its owner it stays", owner: "b", live: live, uid: owned["b"], wantAction: Keep, wantTo: "b"},
		{name: "a live owner is asked to drain", owner: "a", live: live, uid: owned["b"], wantAction: Drain, wantTo: "b"},
		{name: "a drain waits for the acknowledgement", owner: "a", draining: true, live: live, uid: owned["b"], wantAction: Keep, wantTo: "b"},
		{name: "a drain is not taken back", owner: "b", draining: true, live: live, uid: owned["b"], wantAction: Keep, wantTo: "b"},
		{name: "an acknowledged drain is assigned", owner: "", draining: false, live: live, uid: owned["b"], wantAction: Set, wantTo: "b"},
		{name: "a gone owner's object moves at once", owner: "gone", live: live, uid: owned["c"], wantAction: Set, wantTo: "c"},
		{name: "a gone owner's drain moves at once", owner: "gone", draining: true, live: live, uid: owned["c"], wantAction: Set, wantTo: "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, to := Next(tt.owner, tt.draining, tt.live, tt.uid)
			if a != tt.wantAction || to != tt.wantTo {
				t.Fatalf("Next = %s %q, want %s %q", a, to, tt.wantAction, tt.wantTo)
			}
		})
	}
}
