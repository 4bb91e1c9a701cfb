package lag

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Group types for Subscription.GroupType and Snapshot.GroupType. They are
// the values of the handler contract's KAFKA_GROUP_TYPE.
const (
	// GroupClassic is the classic protocol (JoinGroup/SyncGroup), read
	// with DescribeGroups.
	GroupClassic = "classic"
	// GroupConsumer is the KIP-848 consumer protocol, read with
	// ConsumerGroupDescribe.
	GroupConsumer = "consumer"
	// GroupShare is a KIP-932 share group, read with ShareGroupDescribe
	// and DescribeShareGroupOffsets.
	GroupShare = "share"
)

// groupTypes are the types in the order a group of unknown type is looked
// for.
var groupTypes = []string{GroupClassic, GroupConsumer, GroupShare}

// groupTypeOf normalises a Subscription's type: empty is classic.
func groupTypeOf(t string) string {
	switch t {
	case GroupConsumer, GroupShare, GroupStreams:
		return t
	}
	return GroupClassic
}

// groupDescription is one group as its describe request answered.
type groupDescription struct {
	err     error
	state   string
	members int
	// typ is the type under which the broker knows the group; "" when no
	// describe found it.
	typ string
	// epoch and assignmentEpoch are the consumer or share group's epochs,
	// -1 for a classic group.
	epoch, assignmentEpoch int32
	// rebalancing counts consumer-group members whose epoch trails the
	// group epoch: they have not taken their new assignment yet.
	rebalancing int
	// assigned is the number of partitions assigned over all members
	// (active tasks for a streams group).
	assigned int
	// streams is a streams group's topology and tasks (streams.go).
	streams *streamsTopology
}

// found reports whether the describe saw the group with something in it.
// An empty group is not conclusive: Apache Kafka answers an unknown group
// with GROUP_ID_NOT_FOUND, but kfake's DescribeGroups describes a KIP-848
// group as existing with no members, so an empty answer is checked against
// the other types as well.
func (d groupDescription) found() bool { return d.err == nil && d.typ != "" && d.members > 0 }

// describeGroups describes every group with the API of its type, one
// request per coordinator and type, all types at once. A group the API of
// its own type does not find (or finds empty) is then described with the
// other types' APIs, also batched, so that a group whose handlers run
// another protocol than the spec says is reported as such rather than read
// as an empty group.
func (c *cluster) describeGroups(ctx context.Context, types map[string]string) map[string]groupDescription {
	byType := make(map[string][]string)
	for g, t := range types {
		byType[t] = append(byType[t], g)
	}
	out := c.describeByType(ctx, byType)

	retry := make(map[string][]string)
	for g, t := range types {
		if d := out[g]; d.err == nil && !d.found() {
			for _, other := range groupTypes {
				if other != t {
					retry[other] = append(retry[other], g)
				}
			}
		}
	}
	if len(retry) == 0 {
		return out
	}
	others := c.describeByType(ctx, retry)
	for _, t := range groupTypes {
		for _, g := range retry[t] {
			d, ok := others[g+"\x00"+t]
			if !ok {
				d = others[g]
			}
			// Another type wins only when it finds members there: an
			// error or an empty answer leaves the spec's own reading.
			if d.err == nil && d.found() && !out[g].found() {
				out[g] = d
			}
		}
	}
	return out
}

// describeByType runs the describe of each type concurrently for its
// groups. A group asked under several types (only in the retry) gets one
// entry per type, keyed group+"\x00"+type.
func (c *cluster) describeByType(ctx context.Context, byType map[string][]string) map[string]groupDescription {
	results := make(map[string]map[string]groupDescription, len(byType))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for t, groups := range byType {
		slices.Sort(groups)
		wg.Go(func() {
			var r map[string]groupDescription
			switch t {
			case GroupConsumer:
				r = c.describeConsumer(ctx, groups)
			case GroupShare:
				r = c.describeShare(ctx, groups)
			case GroupStreams:
				r = c.describeStreams(ctx, groups)
			default:
				r = c.describe(ctx, groups)
			}
			mu.Lock()
			results[t] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	out := make(map[string]groupDescription)
	count := make(map[string]int)
	for _, r := range results {
		for g := range r {
			count[g]++
		}
	}
	for t, r := range results {
		for g, d := range r {
			if count[g] > 1 {
				out[g+"\x00"+t] = d
			} else {
				out[g] = d
			}
		}
	}
	return out
}

// describeConsumer reads KIP-848 groups with one ConsumerGroupDescribe per
// coordinator.
func (c *cluster) describeConsumer(ctx context.Context, groups []string) map[string]groupDescription {
	described, err := c.adm.DescribeConsumerGroups(ctx, groups...)
	return byGroup(c, "ConsumerGroupDescribe", groups, described, err,
		func(dg kadm.DescribedConsumerGroup) error { return dg.Err },
		describeFailed, notThisType[kadm.DescribedConsumerGroup],
		func(dg kadm.DescribedConsumerGroup) groupDescription {
			d := groupDescription{
				typ: GroupConsumer, state: dg.State, members: len(dg.Members),
				epoch: dg.Epoch, assignmentEpoch: dg.AssignmentEpoch,
				assigned: countPartitions(dg.AssignedPartitions()),
			}
			for _, m := range dg.Members {
				if m.MemberEpoch < dg.Epoch {
					d.rebalancing++
				}
			}
			return d
		})
}

// describeShare reads KIP-932 groups with one ShareGroupDescribe per
// coordinator.
func (c *cluster) describeShare(ctx context.Context, groups []string) map[string]groupDescription {
	described, err := c.adm.DescribeShareGroups(ctx, groups...)
	return byGroup(c, "ShareGroupDescribe", groups, described, err,
		func(dg kadm.DescribedShareGroup) error { return dg.Err },
		describeFailed, notThisType[kadm.DescribedShareGroup],
		func(dg kadm.DescribedShareGroup) groupDescription {
			return groupDescription{
				typ: GroupShare, state: dg.GroupState, members: len(dg.Members),
				epoch: dg.GroupEpoch, assignmentEpoch: dg.AssignmentEpoch,
				assigned: countPartitions(dg.AssignedPartitions()),
			}
		})
}

// notThisType is what a describe API's GROUP_ID_NOT_FOUND means: the group
// is not of the type this API describes.
func notThisType[A any](A) groupDescription {
	return groupDescription{epoch: -1, assignmentEpoch: -1}
}

func describeFailed(err error) groupDescription { return groupDescription{err: err} }

func fetchFailed(err error) groupCommits { return groupCommits{err: err} }

// byGroup turns one batched request's answers into a result per group. A
// group the request did not answer gets the request's error, or "no <api>
// answer"; an answer carrying an error other than GROUP_ID_NOT_FOUND gets
// that error, counted under api. GROUP_ID_NOT_FOUND means different things
// to different requests ("not this type" to a describe, "no commits" to an
// offset fetch), so such an answer goes to notFound, and any other to read.
func byGroup[A, R any](c *cluster, api string, groups []string, answers map[string]A, reqErr error,
	errOf func(A) error, failed func(error) R, notFound, read func(A) R) map[string]R {
	out := make(map[string]R, len(groups))
	for _, g := range groups {
		a, ok := answers[g]
		switch {
		case !ok && reqErr != nil:
			out[g] = failed(reqErr)
		case !ok:
			out[g] = failed(fmt.Errorf("no %s answer for group", api))
		case errors.Is(errOf(a), kerr.GroupIDNotFound):
			out[g] = notFound(a)
		case errOf(a) != nil:
			c.countResponseError(api, errOf(a))
			out[g] = failed(errOf(a))
		default:
			out[g] = read(a)
		}
	}
	return out
}

func countPartitions(ts kadm.TopicsSet) int {
	n := 0
	for _, ps := range ts {
		n += len(ps)
	}
	return n
}

// fetchShareOffsets reads the share-partition start offsets and the
// broker's lag of all share groups with one DescribeShareGroupOffsets per
// coordinator. The start offset plays the committed offset's part: every
// record before it is acknowledged.
func (c *cluster) fetchShareOffsets(ctx context.Context, groups []string) map[string]groupCommits {
	out := make(map[string]groupCommits, len(groups))
	if len(groups) == 0 {
		return out
	}
	resps, err := c.adm.DescribeShareGroupOffsets(ctx, groups...)
	read := func(r kadm.DescribedShareGroupOffsets) groupCommits {
		gc := groupCommits{offsets: make(map[tp]int64), lags: make(map[tp]int64)}
		for t, ps := range r.Offsets {
			for p, o := range ps {
				c.countResponseError("DescribeShareGroupOffsets", o.Err)
				if o.Err != nil || o.StartOffset < 0 {
					continue
				}
				gc.offsets[tp{t, p}] = o.StartOffset
				if o.Lag >= 0 {
					gc.lags[tp{t, p}] = o.Lag
				}
			}
		}
		return gc
	}
	// A group that has never acknowledged anything has no offsets to read.
	return byGroup(c, "DescribeShareGroupOffsets", groups, resps, err,
		func(r kadm.DescribedShareGroupOffsets) error { return r.Err }, fetchFailed, read, read)
}

// groupTypeName is a type as people read it in messages and in the API.
func groupTypeName(t string) string {
	switch t {
	case GroupConsumer:
		return "Consumer"
	case GroupShare:
		return "Share"
	case GroupStreams:
		return "Streams"
	case GroupClassic:
		return "Classic"
	}
	return t
}

// typeMismatch says, readably, that the broker knows the group under
// another type than the subscription's; "" when they agree or the group
// does not exist.
func typeMismatch(group, want string, d groupDescription) string {
	if d.typ == "" || d.typ == want {
		return ""
	}
	return fmt.Sprintf("the broker reports group %s as a %s group with %d members, but spec.groupType is %s: the handlers run the %s protocol; restart them so they take KAFKA_GROUP_TYPE=%s, or set spec.groupType to %s",
		group, groupTypeName(d.typ), d.members, groupTypeName(want), d.typ, want, groupTypeName(d.typ))
}
