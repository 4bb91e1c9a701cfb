package lag

import (
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describedStreamsGroup is a StreamsGroupDescribe answer for a
// two-subtopology topology: subtopology 0 reads "orders" (3 partitions)
// and writes the repartition topic, subtopology 1 reads the repartition
// topic (4 partitions). Two instances of two threads each.
func describedStreamsGroup() kmsg.StreamsGroupDescribeResponseGroup {
	rg := kmsg.NewStreamsGroupDescribeResponseGroup()
	rg.Group, rg.State, rg.Epoch, rg.AssignmentEpoch = "app", "Stable", 7, 7
	topo := kmsg.NewStreamsGroupDescribeResponseGroupTopology()
	topo.Epoch = 2
	s0 := kmsg.NewStreamsGroupDescribeResponseGroupTopologySubtopology()
	s0.SubtopologyID, s0.SourceTopics, s0.RepartitionSinkTopics = "0", []string{"orders"}, []string{"app-count-repartition"}
	s1 := kmsg.NewStreamsGroupDescribeResponseGroupTopologySubtopology()
	s1.SubtopologyID = "1"
	ri := kmsg.NewTopicInfo()
	ri.Topic = "app-count-repartition"
	s1.RepartitionSourceTopics = []kmsg.TopicInfo{ri}
	// The broker may or may not list a repartition topic among the
	// source topics as well; both must count it once.
	s1.SourceTopics = []string{"app-count-repartition"}
	topo.Subtopologies = []kmsg.StreamsGroupDescribeResponseGroupTopologySubtopology{s1, s0}
	rg.Topology = &topo
	member := func(id, process string, epoch int32, active, standby, warmup map[string][]int32) kmsg.StreamsGroupDescribeResponseGroupMember {
		m := kmsg.NewStreamsGroupDescribeResponseGroupMember()
		m.MemberID, m.ProcessID, m.MemberEpoch = id, process, epoch
		ids := func(tasks map[string][]int32) (out []kmsg.TaskIDs) {
			for sub, ps := range tasks {
				out = append(out, kmsg.TaskIDs{SubtopologyID: sub, Partitions: ps})
			}
			return out
		}
		m.Assignment.ActiveTasks, m.Assignment.StandbyTasks, m.Assignment.WarmupTasks = ids(active), ids(standby), ids(warmup)
		return m
	}
	rg.Members = []kmsg.StreamsGroupDescribeResponseGroupMember{
		member("m1", "p1", 7, map[string][]int32{"0": {0, 1}}, map[string][]int32{"1": {0}}, nil),
		member("m2", "p1", 7, map[string][]int32{"1": {0, 1}}, nil, nil),
		member("m3", "p2", 7, map[string][]int32{"0": {2}, "1": {2}}, nil, map[string][]int32{"0": {0}}),
		member("m4", "p2", 7, map[string][]int32{"1": {3}}, map[string][]int32{"0": {1}}, nil),
	}
	return rg
}

func TestStreamsDescription(t *testing.T) {
	parts := map[string][]int32{"orders": {0, 1, 2}, "app-count-repartition": {0, 1, 2, 3}}
	lagOf := func(topic string, p int32) int64 {
		if topic == "orders" {
			return 10
		}
		return 100
	}
	tests := []struct {
		name   string
		mutate func(*kmsg.StreamsGroupDescribeResponseGroup)
		spec   []string
		check  func(t *testing.T, d groupDescription, info *StreamsInfo)
	}{
		{"tasks, topics and split lag", nil, nil, func(t *testing.T, d groupDescription, info *StreamsInfo) {
			if got := d.streams.topics(); !slices.Equal(got, []string{"app-count-repartition", "orders"}) {
				t.Errorf("topics %v", got)
			}
			if !slices.Equal(info.InputTopics, []string{"orders"}) || !slices.Equal(info.RepartitionTopics, []string{"app-count-repartition"}) {
				t.Errorf("input %v, repartition %v", info.InputTopics, info.RepartitionTopics)
			}
			// 3 tasks for subtopology 0, 4 for subtopology 1.
			if info.ActiveTasks != 7 || len(info.Subtopologies) != 2 || info.Subtopologies[0].Tasks != 3 || info.Subtopologies[1].Tasks != 4 {
				t.Errorf("active tasks %d, subtopologies %+v", info.ActiveTasks, info.Subtopologies)
			}
			if info.InputLag != 30 || info.RepartitionLag != 400 {
				t.Errorf("input lag %d, repartition lag %d, want 30 and 400", info.InputLag, info.RepartitionLag)
			}
			// Standby and warm-up tasks are shown, not counted as active.
			if info.AssignedActive != 7 || info.Standby != 2 || info.Warmup != 1 || d.assigned != 7 {
				t.Errorf("assigned active %d (desc %d), standby %d, warmup %d", info.AssignedActive, d.assigned, info.Standby, info.Warmup)
			}
			// 4 members over 2 processes: 2 threads each, so 7 tasks
			// keep at most 4 instances busy.
			if info.Processes != 2 || info.ThreadsPerInstance != 2 || info.MaxInstances != 4 {
				t.Errorf("processes %d, threads %d, max instances %d", info.Processes, info.ThreadsPerInstance, info.MaxInstances)
			}
			if d.rebalancing != 0 || d.members != 4 || d.typ != GroupStreams || d.epoch != 7 {
				t.Errorf("description %+v", d)
			}
			if m := info.Members[2]; m.MemberID != "m3" || !slices.Equal(m.Active, []string{"0_2", "1_2"}) || !slices.Equal(m.Warmup, []string{"0_0"}) {
				t.Errorf("member m3 %+v", m)
			}
		}},
		{"a member behind the group epoch is rebalancing", func(rg *kmsg.StreamsGroupDescribeResponseGroup) {
			rg.Members[1].MemberEpoch = 6
		}, nil, func(t *testing.T, d groupDescription, _ *StreamsInfo) {
			if d.rebalancing != 1 {
				t.Errorf("rebalancing members %d, want 1", d.rebalancing)
			}
		}},
		{"no members: one thread per instance", func(rg *kmsg.StreamsGroupDescribeResponseGroup) {
			rg.Members = nil
		}, nil, func(t *testing.T, _ groupDescription, info *StreamsInfo) {
			if info.ThreadsPerInstance != 0 || info.MaxInstances != 7 {
				t.Errorf("threads %d, max instances %d, want 0 and 7", info.ThreadsPerInstance, info.MaxInstances)
			}
		}},
		{"spec.topics equal to the source topics", nil, []string{"orders"}, func(t *testing.T, _ groupDescription, info *StreamsInfo) {
			if info.TopicsMismatch != "" {
				t.Errorf("mismatch %q", info.TopicsMismatch)
			}
		}},
		{"spec.topics other than the source topics", nil, []string{"orders", "payments"}, func(t *testing.T, _ groupDescription, info *StreamsInfo) {
			if !strings.Contains(info.TopicsMismatch, "[orders payments] are not the source topics [orders]") {
				t.Errorf("mismatch %q", info.TopicsMismatch)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rg := describedStreamsGroup()
			if tt.mutate != nil {
				tt.mutate(&rg)
			}
			d := streamsDescription(rg)
			tt.check(t, d, streamsInfo(d.streams, tt.spec, parts, lagOf))
		})
	}
}

// TestStreamsGroupOnBrokerWithoutKIP1071 subscribes a streams group on a
// broker that does not implement StreamsGroupDescribe (kfake, like Apache
// Kafka before 4.2): the snapshot names the missing protocol.
func TestStreamsGroupOnBrokerWithoutKIP1071(t *testing.T) {
	c := newKafka(t, kfake.SeedTopics(1, "orders"))
	e := newEngine(t, Options{})
	sub := subscription("app", c.ListenAddrs(), "app")
	sub.GroupType = GroupStreams
	e.Register(sub)
	defer e.Unregister(sub.Consumer)
	_ = e.Poll(t.Context(), sub.Cluster.ID())
	s := mustSnapshot(t, e, sub.Consumer)
	if !s.StreamsUnsupported || !s.Stale {
		t.Fatalf("StreamsUnsupported %v, stale %v, want both: %q", s.StreamsUnsupported, s.Stale, s.Error)
	}
	if !strings.Contains(s.Error, "StreamsGroupDescribe (API key 89)") {
		t.Fatalf("error %q does not name the missing API", s.Error)
	}
}
