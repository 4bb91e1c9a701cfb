// Package shard is the pure logic of a sharded operator: which replicas are
// members (from their Leases' times), which bucket an object is in (a
// hash of its UID), which member owns a bucket (rendezvous hashing), and
// what the sharder does next to the bucket table so that a bucket moves
// from one owner to another without ever having two (the hand-over). It
// takes the clock and the inputs as values and touches no client.
package shard

import (
	"hash/fnv"
	"slices"
	"time"
)

// LabelMember marks a replica's membership Lease (and the bucket table);
// its value is the operator's group (the leader election ID).
const LabelMember = "sharding.lagscale.dev/member"

// Member is what membership needs of one replica's Lease.
type Member struct {
	// Name is the replica's identity, the Lease's holder.
	Name string
	// RenewTime is when the holder last renewed; zero never.
	RenewTime time.Time
	// Duration is how long a renewal holds.
	Duration time.Duration
}

// Live returns the names of the members whose Lease is held and has not
// expired at now, sorted. A released Lease (no holder) is not live.
func Live(members []Member, now time.Time) []string {
	var out []string
	for _, m := range members {
		if m.Name == "" || m.RenewTime.IsZero() || !now.Before(m.RenewTime.Add(m.Duration)) {
			continue
		}
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Gone says whether a member's Lease can be deleted at now: it was
// released (no holder), or it expired longer ago than its own duration, a
// margin for the clocks of the member that renewed it and of the one that
// looks. A replica that comes back under the same name creates its Lease
// again; nothing else reads a Lease that is not live.
func Gone(m Member, now time.Time) bool {
	if m.Name == "" || m.RenewTime.IsZero() {
		return true
	}
	return now.After(m.RenewTime.Add(2 * m.Duration))
}

// Assign returns the member that owns the object with uid: the one with
// the highest hash of (member, uid), rendezvous hashing. When a member
// joins, only the objects it wins move, all to it; when one leaves, only
// its own objects move, spread over the others. Empty when there are no
// members.
func Assign(uid string, members []string) string {
	var best string
	var bestScore uint64
	for _, m := range members {
		h := fnv.New64a()
		_, _ = h.Write([]byte(m))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(uid))
		if s := mix(h.Sum64()); best == "" || s > bestScore || (s == bestScore && m < best) {
			best, bestScore = m, s
		}
	}
	return best
}

// mix spreads FNV's output over the whole range (the splitmix64
// finalizer): FNV-1a alone orders names that differ in their last byte
// too alike for a fair split.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Action is the sharder's next step for one object.
type Action int

const (
	// Keep means nothing to do: the object is where it belongs, or a hand-over
	// waits for the owner's acknowledgement.
	Keep Action = iota
	// Set means set the shard label to the target (and remove any drain label):
	// the object has no owner, or its owner is gone.
	Set
	// Drain means set the drain label, asking the live owner to hand over.
	Drain
)

func (a Action) String() string {
	switch a {
	case Set:
		return "Set"
	case Drain:
		return "Drain"
	}
	return "Keep"
}

// Next is the sharder's step for an object whose shard label is owner
// (empty for none) and whose drain label is set or not, given the live
// members. It returns the action and the member the object belongs to.
//
//   - No live member: keep everything as it is.
//   - No owner: set the owner (a new object, or one its owner handed over).
//   - The owner is not live (its Lease expired or was released): it writes
//     nothing any more, so the object moves at once.
//   - The owner is live and the object belongs elsewhere: ask it to drain,
//     and wait for it to remove the labels. A drain already asked is not
//     taken back, even if the object would now stay: the owner may have
//     stopped already, and it comes back through "no owner".
func Next(owner string, draining bool, live []string, uid string) (Action, string) {
	want := Assign(uid, live)
	switch {
	case want == "":
		return Keep, ""
	case owner == "":
		return Set, want
	case !slices.Contains(live, owner):
		return Set, want
	case draining, owner == want:
		return Keep, want
	}
	return Drain, want
}
