package lag

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// GroupStreams is a KIP-1071 streams group (Kafka Streams on
// group.protocol=streams), read with StreamsGroupDescribe; its position is
// committed offsets, read with OffsetFetch like a consumer group's.
const GroupStreams = "streams"

// streamsDescribeKey is StreamsGroupDescribe's API key. kadm has no helper
// for it and kgo no sharder, so streams.go finds the coordinators itself.
const streamsDescribeKey = 89

// ErrStreamsUnsupported is the error of a streams group on a broker that
// does not implement the KIP-1071 protocol. Retrying cannot help; the
// broker must be upgraded.
var ErrStreamsUnsupported = errors.New("the broker does not support Kafka Streams groups (KIP-1071): StreamsGroupDescribe (API key 89) is missing from its ApiVersions; use Apache Kafka 4.2 or later, or run the application on group.protocol=classic with spec.groupType Classic")

// StreamsInfo is what StreamsGroupDescribe says about a streams group, with
// the group's lag split by the kind of topic.
type StreamsInfo struct {
	// TopologyEpoch is the epoch of the topology the broker holds.
	TopologyEpoch int32
	// Subtopologies are the topology's subtopologies, sorted by ID.
	Subtopologies []Subtopology
	// InputTopics are the source topics that are not repartition topics,
	// sorted.
	InputTopics []string
	// RepartitionTopics are the repartition source topics, sorted.
	RepartitionTopics []string
	// ActiveTasks is the number of tasks summed over the subtopologies:
	// each subtopology has one task per partition of its widest source
	// topic. Only active tasks consume.
	ActiveTasks int
	// AssignedActive, Standby and Warmup count the tasks assigned over all
	// members. Standby and warm-up tasks restore state, they consume no
	// input, so they never count toward the scale.
	AssignedActive, Standby, Warmup int
	// Processes is the number of distinct Kafka Streams instances
	// (process IDs) among the members.
	Processes int
	// ThreadsPerInstance is members per process, rounded up; 0 without
	// members. Each member is one stream thread.
	ThreadsPerInstance int
	// MaxInstances is the most instances that can each get an active
	// task: ActiveTasks over ThreadsPerInstance (1 without members),
	// rounded up.
	MaxInstances int
	// InputLag and RepartitionLag are the lag on input and on repartition
	// topics: backlog in a repartition topic is work the application made
	// itself.
	InputLag, RepartitionLag int64
	// Members are the members, sorted by member ID.
	Members []StreamsMember
	// TopicsMismatch says readably how spec.topics differ from the
	// topology's input topics; "" when they agree or none are given.
	TopicsMismatch string
}

// Subtopology is one subtopology of a streams group's topology.
type Subtopology struct {
	// ID is the subtopology's ID.
	ID string
	// SourceTopics are the topics it reads, repartition topics included.
	SourceTopics []string
	// RepartitionSourceTopics are the repartition topics among them.
	RepartitionSourceTopics []string
	// Tasks is its number of tasks: the partitions of its widest source
	// topic, 0 while their metadata is unknown.
	Tasks int
}

// StreamsMember is one member (one stream thread) of a streams group.
type StreamsMember struct {
	// MemberID is the member's ID.
	MemberID string
	// ProcessID is the Kafka Streams instance the member belongs to.
	ProcessID string
	// ClientID is the member's client ID.
	ClientID string
	// MemberEpoch is the member's epoch.
	MemberEpoch int32
	// Active, Standby and Warmup are the tasks assigned to the member, as
	// "subtopology_partition", sorted.
	Active, Standby, Warmup []string
}

// streamsTopology is one streams group's describe, before the partition
// counts of its topics are known.
type streamsTopology struct {
	epoch    int32
	subs     []Subtopology
	members  []StreamsMember
	standby  int
	warmup   int
	assigned int
}

// topics are every topic the topology reads, sorted.
func (t *streamsTopology) topics() []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, s := range t.subs {
		out = append(out, s.SourceTopics...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// describeStreams reads KIP-1071 groups with one StreamsGroupDescribe per
// coordinator. Coordinators are remembered between cycles and looked up
// again (one batched FindCoordinator) only for groups without one or whose
// coordinator moved.
func (c *cluster) describeStreams(ctx context.Context, groups []string) map[string]groupDescription {
	out := make(map[string]groupDescription, len(groups))
	if len(groups) == 0 {
		return out
	}
	retry := c.describeStreamsOnce(ctx, groups, out)
	if len(retry) > 0 {
		for _, g := range retry {
			delete(c.streamsCoord, g)
		}
		for _, g := range c.describeStreamsOnce(ctx, retry, out) {
			// Still moving: this cycle has no reading of the group.
			out[g] = groupDescription{err: errors.New("StreamsGroupDescribe: the group's coordinator moved twice in one cycle")}
			delete(c.streamsCoord, g)
		}
	}
	return out
}

// describeStreamsOnce describes groups at their coordinators into out and
// returns the groups whose coordinator answered that it is not theirs.
func (c *cluster) describeStreamsOnce(ctx context.Context, groups []string, out map[string]groupDescription) (retry []string) {
	if c.streamsCoord == nil {
		c.streamsCoord = make(map[string]int32)
	}
	var unknown []string
	for _, g := range groups {
		if _, ok := c.streamsCoord[g]; !ok {
			unknown = append(unknown, g)
		}
	}
	if len(unknown) > 0 {
		found := c.adm.FindGroupCoordinators(ctx, unknown...)
		for _, g := range unknown {
			r, ok := found[g]
			switch {
			case !ok:
				out[g] = groupDescription{err: errors.New("no FindCoordinator answer for group")}
			case r.Err != nil:
				c.countResponseError("FindCoordinator", r.Err)
				out[g] = groupDescription{err: fmt.Errorf("finding the group coordinator: %w", r.Err)}
			default:
				c.streamsCoord[g] = r.NodeID
			}
		}
	}
	byNode := make(map[int32][]string)
	for _, g := range groups {
		if n, ok := c.streamsCoord[g]; ok {
			byNode[n] = append(byNode[n], g)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for node, gs := range byNode {
		wg.Go(func() {
			req := kmsg.NewPtrStreamsGroupDescribeRequest()
			req.Groups = gs
			// The topology's topics are enough; its full description
			// (processors, stores) is not needed to size the group.
			req.IncludeTopologyDescription = false
			resp, err := req.RequestWith(ctx, c.client.Broker(int(node)))
			if err != nil && c.lacksStreams(ctx, node) {
				err = ErrStreamsUnsupported
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				for _, g := range gs {
					out[g] = groupDescription{err: fmt.Errorf("StreamsGroupDescribe: %w", err)}
					// The coordinator may have gone; ask again next time.
					delete(c.streamsCoord, g)
				}
				return
			}
			answered := make(map[string]bool, len(resp.Groups))
			for _, rg := range resp.Groups {
				answered[rg.Group] = true
				err := kerr.ErrorForCode(rg.ErrorCode)
				switch {
				case errors.Is(err, kerr.NotCoordinator), errors.Is(err, kerr.CoordinatorNotAvailable), errors.Is(err, kerr.CoordinatorLoadInProgress):
					retry = append(retry, rg.Group)
				case errors.Is(err, kerr.GroupIDNotFound):
					out[rg.Group] = notThisType(rg)
				case err != nil:
					c.countResponseError("StreamsGroupDescribe", err)
					out[rg.Group] = groupDescription{err: fmt.Errorf("StreamsGroupDescribe: %w", err)}
				default:
					out[rg.Group] = streamsDescription(rg)
				}
			}
			for _, g := range gs {
				if !answered[g] {
					out[g] = groupDescription{err: errors.New("no StreamsGroupDescribe answer for group")}
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(retry)
	return retry
}

// lacksStreams asks a broker whose StreamsGroupDescribe failed whether it
// implements the API at all, so that an old broker is named as such
// rather than reported as unreachable. It costs one ApiVersions, only on
// a failure.
func (c *cluster) lacksStreams(ctx context.Context, node int32) bool {
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "lagscale", "0"
	resp, err := req.RequestWith(ctx, c.client.Broker(int(node)))
	if err != nil || resp.ErrorCode != 0 {
		return false
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == streamsDescribeKey {
			return false
		}
	}
	return true
}

// streamsDescription turns one described streams group into the engine's
// description: members and epochs, the topology, and the tasks assigned.
func streamsDescription(rg kmsg.StreamsGroupDescribeResponseGroup) groupDescription {
	d := groupDescription{
		typ: GroupStreams, state: rg.State, members: len(rg.Members),
		epoch: rg.Epoch, assignmentEpoch: rg.AssignmentEpoch,
		streams: &streamsTopology{},
	}
	st := d.streams
	if rg.Topology != nil {
		st.epoch = rg.Topology.Epoch
		for _, s := range rg.Topology.Subtopologies {
			sub := Subtopology{ID: s.SubtopologyID}
			for _, r := range s.RepartitionSourceTopics {
				sub.RepartitionSourceTopics = append(sub.RepartitionSourceTopics, r.Topic)
			}
			sub.SourceTopics = append(slices.Clone(s.SourceTopics), sub.RepartitionSourceTopics...)
			slices.Sort(sub.SourceTopics)
			sub.SourceTopics = slices.Compact(sub.SourceTopics)
			slices.Sort(sub.RepartitionSourceTopics)
			st.subs = append(st.subs, sub)
		}
		slices.SortFunc(st.subs, func(a, b Subtopology) int { return strings.Compare(a.ID, b.ID) })
	}
	tasks := func(ts []kmsg.TaskIDs) (out []string, n int) {
		for _, t := range ts {
			for _, p := range t.Partitions {
				out = append(out, fmt.Sprintf("%s_%d", t.SubtopologyID, p))
			}
		}
		slices.Sort(out)
		return out, len(out)
	}
	for _, m := range rg.Members {
		sm := StreamsMember{MemberID: m.MemberID, ProcessID: m.ProcessID, ClientID: m.ClientID, MemberEpoch: m.MemberEpoch}
		var n int
		sm.Active, n = tasks(m.Assignment.ActiveTasks)
		st.assigned += n
		d.assigned += n
		sm.Standby, n = tasks(m.Assignment.StandbyTasks)
		st.standby += n
		sm.Warmup, n = tasks(m.Assignment.WarmupTasks)
		st.warmup += n
		if m.MemberEpoch < rg.Epoch {
			d.rebalancing++
		}
		st.members = append(st.members, sm)
	}
	slices.SortFunc(st.members, func(a, b StreamsMember) int { return strings.Compare(a.MemberID, b.MemberID) })
	return d
}

// streamsInfo completes a streams group's topology with the partition
// counts of its topics and splits the lag by the kind of topic. parts are
// the partitions per topic; lagOf gives a partition's lag.
func streamsInfo(t *streamsTopology, specTopics []string, parts map[string][]int32, lagOf func(topic string, partition int32) int64) *StreamsInfo {
	if t == nil {
		return nil
	}
	info := &StreamsInfo{
		TopologyEpoch:  t.epoch,
		Members:        slices.Clone(t.members),
		AssignedActive: t.assigned,
		Standby:        t.standby,
		Warmup:         t.warmup,
	}
	repart := make(map[string]bool)
	for _, s := range t.subs {
		for _, r := range s.RepartitionSourceTopics {
			repart[r] = true
		}
	}
	for _, s := range t.subs {
		s.SourceTopics = slices.Clone(s.SourceTopics)
		for _, topic := range s.SourceTopics {
			s.Tasks = max(s.Tasks, len(parts[topic]))
		}
		info.ActiveTasks += s.Tasks
		info.Subtopologies = append(info.Subtopologies, s)
	}
	for _, topic := range t.topics() {
		var sum int64
		for _, p := range parts[topic] {
			sum += lagOf(topic, p)
		}
		if repart[topic] {
			info.RepartitionTopics = append(info.RepartitionTopics, topic)
			info.RepartitionLag += sum
		} else {
			info.InputTopics = append(info.InputTopics, topic)
			info.InputLag += sum
		}
	}
	procs := make(map[string]bool)
	for _, m := range t.members {
		procs[m.ProcessID] = true
	}
	info.Processes = len(procs)
	threads := 1
	if info.Processes > 0 {
		info.ThreadsPerInstance = (len(t.members) + info.Processes - 1) / info.Processes
		threads = info.ThreadsPerInstance
	}
	info.MaxInstances = (info.ActiveTasks + threads - 1) / threads
	info.TopicsMismatch = topicsMismatch(specTopics, info.InputTopics, len(t.subs) > 0)
	return info
}

// topicsMismatch says how spec.topics differ from the topology's input
// topics; "" when they agree, when spec.topics is empty, or while the
// broker has no topology to compare with.
func topicsMismatch(spec, input []string, haveTopology bool) string {
	if len(spec) == 0 || !haveTopology {
		return ""
	}
	spec = slices.Clone(spec)
	slices.Sort(spec)
	spec = slices.Compact(spec)
	if slices.Equal(spec, input) {
		return ""
	}
	return fmt.Sprintf("spec.topics %v are not the source topics %v of the topology the broker reports: set spec.topics to the topology's source topics, or leave spec.topics out (lag is read on the topology's topics)",
		spec, input)
}

// topicsOf returns the topics to read for a subscription: its own, plus
// for a streams group the topics of its topology.
func topicsOf(s Subscription, t *streamsTopology) []string {
	if groupTypeOf(s.GroupType) != GroupStreams || t == nil {
		return s.Topics
	}
	out := append(slices.Clone(s.Topics), t.topics()...)
	slices.Sort(out)
	return slices.Compact(out)
}

// streamsTopologies returns the topology to read for each streams group,
// and completes a description without a topology with the last one
// known: a failed describe, or a group whose members all left (the broker
// then reports no subtopologies), must not drop the group's topics, whose
// lag is what wakes the application.
func (c *cluster) streamsTopologies(types map[string]string, described map[string]groupDescription) map[string]*streamsTopology {
	out := make(map[string]*streamsTopology)
	for g, t := range types {
		if t != GroupStreams {
			continue
		}
		var last *streamsTopology
		if gs, ok := c.groups[g]; ok && gs.desc.streams != nil && len(gs.desc.streams.subs) > 0 {
			last = gs.desc.streams
		}
		d := described[g]
		switch {
		case d.err == nil && d.streams != nil && len(d.streams.subs) > 0:
			out[g] = d.streams
		case d.err == nil && d.streams != nil && last != nil:
			d.streams.subs, d.streams.epoch = last.subs, last.epoch
			described[g] = d
			out[g] = d.streams
		case last != nil:
			out[g] = last
		}
	}
	return out
}

// streamsSnapshot is a streams subscription's StreamsInfo from the cycle's
// partitions and the lag just computed for them.
func streamsSnapshot(s Subscription, t *streamsTopology, parts map[string][]int32, lags []PartitionLag) *StreamsInfo {
	byTP := make(map[tp]int64, len(lags))
	for _, p := range lags {
		byTP[tp{p.Topic, p.Partition}] = p.Lag
	}
	return streamsInfo(t, s.Topics, parts, func(topic string, p int32) int64 { return byTP[tp{topic, p}] })
}
