package shard

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Buckets is how many buckets the consumers are hashed into. A consumer's
// bucket never changes, so its label is written once in its life; what
// moves between replicas is a bucket, recorded in one table, so a move
// writes nothing per consumer. 1,024 keeps each of a few replicas' share
// within a few percent of an equal split (rendezvous hashing of buckets
// is a sum of many small, even draws), and a replica's cache selector
// lists at most this many values.
const Buckets = 1024

// LabelBucket is the consumer's bucket, set by the sharder once, and by
// the owner on the consumer's Deployment. Each replica's cache selects the
// buckets it owns.
const LabelBucket = "sharding.lagscale.dev/bucket"

// BucketOf is the bucket of the object with uid, as the label's value.
func BucketOf(uid string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	return strconv.FormatUint(mix(h.Sum64())%Buckets, 10)
}

// bucketKey is what a bucket is hashed by among the members.
func bucketKey(b int) string { return "bucket/" + strconv.Itoa(b) }

// Entry is one bucket's row of the table: its owner, and the member it
// is being handed to while the owner drains it. Empty Owner: nobody may
// write the bucket's consumers.
type Entry struct {
	Owner, DrainTo string
}

// Table is every bucket's Entry, indexed by bucket.
type Table []Entry

// NewTable is a table with no owners.
func NewTable() Table { return make(Table, Buckets) }

// Plan is the sharder's step for the whole table given the live members:
// each bucket moves one step of Next. It returns the new table and
// whether anything changed. The table is not modified.
func Plan(t Table, live []string) (Table, bool) {
	next := slices.Clone(t)
	changed := false
	for b, e := range t {
		action, to := Next(e.Owner, e.DrainTo != "", live, bucketKey(b))
		switch action {
		case Set:
			next[b] = Entry{Owner: to}
		case Drain:
			next[b] = Entry{Owner: e.Owner, DrainTo: to}
		default:
			continue
		}
		changed = true
	}
	return next, changed
}

// Owned is the set of buckets member may write: those it owns and has
// not been asked to hand over.
func (t Table) Owned(member string) map[string]bool {
	out := map[string]bool{}
	for b, e := range t {
		if e.Owner == member && e.DrainTo == "" {
			out[strconv.Itoa(b)] = true
		}
	}
	return out
}

// Draining is the set of buckets member owns and is asked to hand over.
func (t Table) Draining(member string) map[string]bool {
	out := map[string]bool{}
	for b, e := range t {
		if e.Owner == member && e.DrainTo != "" {
			out[strconv.Itoa(b)] = true
		}
	}
	return out
}

// Ack is member's acknowledgement that it stopped writing the buckets it
// was asked to hand over (all of buckets): their owner is cleared, and the
// sharder gives them to the new owner. It returns the new table and
// whether anything changed. The table is not modified.
func (t Table) Ack(member string, buckets map[string]bool) (Table, bool) {
	next := slices.Clone(t)
	changed := false
	for b, e := range t {
		if e.Owner == member && e.DrainTo != "" && buckets[strconv.Itoa(b)] {
			next[b] = Entry{}
			changed = true
		}
	}
	return next, changed
}

// OwnerOf is the owner of the bucket an object's labels name: "" when
// the bucket has none, or the labels name no bucket.
func (t Table) OwnerOf(labels map[string]string) string {
	b, err := strconv.Atoi(labels[LabelBucket])
	if err != nil || b < 0 || b >= len(t) {
		return ""
	}
	return t[b].Owner
}

// HandingOver counts the buckets whose hand-over waits for their owner.
func (t Table) HandingOver() int {
	n := 0
	for _, e := range t {
		if e.DrainTo != "" {
			n++
		}
	}
	return n
}

// Shares counts the buckets each owner holds, draining or not.
func (t Table) Shares() map[string]int {
	out := map[string]int{}
	for _, e := range t {
		if e.Owner != "" {
			out[e.Owner]++
		}
	}
	return out
}

// Encode is the table as a ConfigMap's data: one key per owned bucket,
// "owner" or "owner>new owner" while draining.
func (t Table) Encode() map[string]string {
	out := map[string]string{}
	for b, e := range t {
		switch {
		case e.Owner == "":
		case e.DrainTo == "":
			out[strconv.Itoa(b)] = e.Owner
		default:
			out[strconv.Itoa(b)] = e.Owner + ">" + e.DrainTo
		}
	}
	return out
}

// Decode reads a table written by Encode. Keys that are not buckets are
// an error: the table is lagscale's alone.
func Decode(data map[string]string) (Table, error) {
	t := NewTable()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		b, err := strconv.Atoi(k)
		if err != nil || b < 0 || b >= Buckets {
			return nil, fmt.Errorf("shard table: key %q is not a bucket (0 to %d)", k, Buckets-1)
		}
		owner, to, _ := strings.Cut(data[k], ">")
		if owner == "" {
			return nil, fmt.Errorf("shard table: bucket %d has no owner in %q", b, data[k])
		}
		t[b] = Entry{Owner: owner, DrainTo: to}
	}
	return t, nil
}

// Selector is the value list of a cache selector for buckets: the
// bucket numbers sorted, or "none" (no bucket is named so) when empty.
func Selector(buckets map[string]bool) []string {
	if len(buckets) == 0 {
		return []string{"none"}
	}
	out := slices.Collect(maps.Keys(buckets))
	slices.SortFunc(out, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return out
}
