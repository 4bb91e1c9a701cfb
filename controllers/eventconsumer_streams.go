package controllers

import (
	"fmt"
	"slices"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
)

// maxStatusTopics bounds status.topics and the topic lists of
// status.lag.streams.
const maxStatusTopics = 64

// streamsStalled returns what a streams group's snapshot says a person
// must fix: a broker without the KIP-1071 protocol, or spec.topics that
// are not the topology's source topics; nil when neither.
func streamsStalled(snap lag.Snapshot) *condition {
	switch {
	case snap.StreamsUnsupported:
		return &condition{reason: v1alpha1.ReasonStreamsUnsupported, message: lag.ErrStreamsUnsupported.Error()}
	case snap.Streams != nil && snap.Streams.TopicsMismatch != "":
		return &condition{reason: v1alpha1.ReasonTopologyMismatch, message: snap.Streams.TopicsMismatch}
	}
	return nil
}

// statusTopics are the topics whose lag is read: spec.topics, or for a
// streams group with a known topology its input and repartition topics.
func statusTopics(ec *v1alpha1.EventConsumer, snap *lag.Snapshot) []string {
	out := slices.Clone(ec.Spec.Topics)
	if snap != nil && snap.Streams != nil {
		out = append(out, snap.Streams.InputTopics...)
		out = append(out, snap.Streams.RepartitionTopics...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	return capList(out, maxStatusTopics)
}

// streamsLagStatus is status.lag.streams from a streams group's snapshot.
func streamsLagStatus(s *lag.StreamsInfo) *v1alpha1.StreamsLagStatus {
	if s == nil {
		return nil
	}
	return &v1alpha1.StreamsLagStatus{
		InputLag:            s.InputLag,
		RepartitionLag:      s.RepartitionLag,
		InputTopics:         capList(s.InputTopics, maxStatusTopics),
		RepartitionTopics:   capList(s.RepartitionTopics, maxStatusTopics),
		Subtopologies:       int32(len(s.Subtopologies)),
		ActiveTasks:         int32(s.ActiveTasks),
		AssignedActiveTasks: int32(s.AssignedActive),
		StandbyTasks:        int32(s.Standby),
		WarmupTasks:         int32(s.Warmup),
		ThreadsPerInstance:  int32(s.ThreadsPerInstance),
		TopologyEpoch:       s.TopologyEpoch,
	}
}

// atTaskCount is ScalingLimited's message for a streams group whose
// replicas are bounded by its tasks.
func atTaskCount(missed string, wanted int32, s *lag.StreamsInfo) string {
	threads := max(s.ThreadsPerInstance, 1)
	return fmt.Sprintf(
		"%s: the lag asks for %d replicas, and the %d active tasks of the %d subtopologies keep at most %d instances of %d stream threads busy (a task is the unit of parallelism, standby and warm-up tasks consume nothing); add partitions to the source topics (more tasks), lower num.stream.threads so each instance takes fewer tasks, or make each thread faster",
		missed, wanted, s.ActiveTasks, len(s.Subtopologies), s.MaxInstances, threads)
}

func capList(l []string, n int) []string {
	if len(l) > n {
		return l[:n]
	}
	return l
}
