package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// DemoGroupStreams is DemoOptions.GroupType for the Kafka Streams phase:
// examples/java-streams-handler on group.protocol=streams (KIP-1071),
// which needs Apache Kafka.
const DemoGroupStreams = "streams"

// streamsDefaults fills the Streams phase's own defaults before the
// common ones: one input partition, so that the topology has two tasks
// (one per subtopology) and the group can keep at most two instances of
// one stream thread busy; 20 ms of work per record in each subtopology,
// so that one instance handles 25 records/s and two 50/s; a burst of
// about 100/s for 30 s after 5 s of 3/s and before 30 s of it. The steady
// phase before the burst is short: with 30 s of it, the autoscaler took
// the group to 2 instances within its first 15 s, on a lag of a few
// records and a time lag under 2 s, before any burst (the capacity is not
// yet learned, and a fresh instance's first commits come late).
func (o *DemoOptions) streamsDefaults() {
	if o.Name == "" {
		o.Name = "demo-streams"
	}
	if o.Topic == "" {
		o.Topic = "demo-words"
	}
	if o.Partitions == 0 {
		o.Partitions = 1
	}
	if o.Rate == 0 {
		o.Rate = 3
	}
	if o.BurstFactor == 0 {
		o.BurstFactor = 33
	}
	if o.Steady == 0 {
		o.Steady = 5 * time.Second
	}
	if o.Burst == 0 {
		o.Burst = 30 * time.Second
	}
	if o.After == 0 {
		o.After = 30 * time.Second
	}
	if o.ScaleDownStabilizationSeconds == 0 {
		o.ScaleDownStabilizationSeconds = 30
	}
	if o.PollIntervalSeconds == 0 {
		o.PollIntervalSeconds = 2
	}
}

// waitTransactionCoordinator waits until the broker has a transaction
// coordinator, which a fresh Apache Kafka creates (the __transaction_state
// topic) only when a transactional client first asks. The Streams example
// runs exactly-once, so without this its first records wait seconds for
// that topic while the lag builds, and the autoscaler, seeing a cold
// instance consume nothing, scales out before the burst.
func waitTransactionCoordinator(ctx context.Context, bootstrap string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := waitFor(ctx, 2*time.Minute, func() (bool, error) {
		r := adm.FindTxnCoordinators(ctx, "lagscale-demo-warmup")
		return r.Ok(), r.Error()
	}); err != nil {
		return fmt.Errorf("wait for the transaction coordinator: %w", err)
	}
	return nil
}

// tasksRunning reports, for a streams group, whether the broker knows the
// topology and has assigned every active task with no rebalance under
// way: until then a fresh instance consumes nothing, and load started
// earlier builds a backlog the burst did not cause. Other groups have no
// tasks to wait for.
func tasksRunning(l *v1alpha1.LagStatus) bool {
	s := l.Streams
	if l.GroupType != string(v1alpha1.GroupTypeStreams) {
		return true
	}
	return s != nil && s.ActiveTasks > 0 && s.AssignedActiveTasks == s.ActiveTasks && l.RebalancingMembers == 0
}

// streamsOutputTopic is where the Streams phase's application writes its
// counts.
func streamsOutputTopic(o DemoOptions) string { return o.Topic + "-counts" }

// streamsConsumer is the Streams phase's EventConsumer: groupType Streams,
// the group is the application.id, and the handler is the Kafka Streams
// example with one stream thread, so that the task count bounds the
// instances.
func streamsConsumer(o DemoOptions, bootstrap string) *v1alpha1.EventConsumer {
	return &v1alpha1.EventConsumer{
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace},
		Spec: v1alpha1.EventConsumerSpec{
			Topics:        []string{o.Topic},
			ConsumerGroup: o.Name,
			GroupType:     v1alpha1.GroupTypeStreams,
			Kafka:         v1alpha1.KafkaConnection{BootstrapServers: []string{bootstrap}},
			Handler: &v1alpha1.HandlerSpec{
				Image: JavaStreamsHandlerImage,
				Env: []corev1.EnvVar{
					{Name: "STREAMS_WORK_MS", Value: strconv.Itoa(o.WorkMS)},
					{Name: "STREAMS_OUTPUT_TOPIC", Value: streamsOutputTopic(o)},
					{Name: "STREAMS_NUM_THREADS", Value: "1"},
				},
			},
			Scaling: v1alpha1.ScalingSpec{
				MinReplicas:                   ptr.To[int32](1),
				Policy:                        v1alpha1.PolicyTimeLag,
				MaxLagSeconds:                 ptr.To[int32](30),
				ScaleDownStabilizationSeconds: ptr.To(o.ScaleDownStabilizationSeconds),
				PollIntervalSeconds:           ptr.To(o.PollIntervalSeconds),
				OffsetResetPolicy:             v1alpha1.OffsetResetEarliest,
			},
		},
	}
}

// StreamsCounts compares the Streams phase's output with its input: every
// value on the input topic must be counted as often as it occurs there,
// no more and no less, in the last count of its key on the output topic.
type StreamsCounts struct {
	// Input is the records read from the input topic; Counted the sum of
	// the last counts on the output topic.
	Input, Counted int64
	// Keys is the distinct values of the input.
	Keys int
	// Wrong is the keys whose last count is not their occurrences in the
	// input; Example names one.
	Wrong   int
	Example string
}

// ExactlyOnce reports whether every input record was counted exactly once.
func (c StreamsCounts) ExactlyOnce() bool {
	return c.Input > 0 && c.Wrong == 0 && c.Counted == c.Input
}

// CheckStreamsCounts reads the input topic and the output topic (read
// committed, from the start) and compares them.
func CheckStreamsCounts(ctx context.Context, bootstrap, input, output string) (StreamsCounts, error) {
	var res StreamsCounts
	want := map[string]int64{}
	if err := readTopic(ctx, bootstrap, input, func(r *kgo.Record) {
		want[string(r.Value)]++
		res.Input++
	}); err != nil {
		return res, err
	}
	last := map[string]string{}
	if err := readTopic(ctx, bootstrap, output, func(r *kgo.Record) { last[string(r.Key)] = string(r.Value) }); err != nil {
		return res, err
	}
	res.Keys = len(want)
	for k, n := range want {
		got, _ := strconv.ParseInt(last[k], 10, 64)
		res.Counted += got
		if got != n {
			res.Wrong++
			if res.Example == "" {
				res.Example = fmt.Sprintf("%q counted %q, occurs %d times", k, last[k], n)
			}
		}
	}
	for k := range last {
		if _, ok := want[k]; !ok {
			res.Wrong++
			if res.Example == "" {
				res.Example = fmt.Sprintf("%q counted but not in the input", k)
			}
		}
	}
	return res, nil
}

// readTopic consumes topic from the start, read committed, until nothing
// more arrives for 5 s (15 s before the first record). It waits rather
// than reading up to the end offsets because a transactional topic's last
// offsets are commit markers, which no record carries.
func readTopic(ctx context.Context, bootstrap, topic string, fn func(*kgo.Record)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return err
	}
	defer cl.Close()
	deadline := time.Now().Add(time.Minute)
	idle := 15 * time.Second
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, idle)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n := 0
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("read %s: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) { n++; fn(r) })
		if n == 0 {
			return nil
		}
		idle = 5 * time.Second
	}
	return fmt.Errorf("read %s: still records after a minute", topic)
}

// observeStreams keeps the streams group's task count and the instances
// it can keep busy, from the status.
func (r *DemoResult) observeStreams(st *v1alpha1.StreamsLagStatus) {
	if st == nil || st.ActiveTasks == 0 {
		return
	}
	r.ActiveTasks = st.ActiveTasks
	threads := max(st.ThreadsPerInstance, 1)
	r.MaxInstances = (st.ActiveTasks + threads - 1) / threads
}

// printStreams prints the Streams phase's lines of the summary.
func (r *DemoResult) printStreams(w io.Writer, output string) {
	if r.Counts == nil {
		return
	}
	fmt.Fprintf(w, "tasks:                 %d active; at most %d instances of one stream thread\n", r.ActiveTasks, r.MaxInstances)
	c := r.Counts
	if c.ExactlyOnce() {
		fmt.Fprintf(w, "counted exactly once:  %d input records, %d values, in %s\n", c.Input, c.Keys, output)
		return
	}
	fmt.Fprintf(w, "counted exactly once:  NO: %d input records, %d counted, %d of %d values wrong (%s) in %s\n", c.Input, c.Counted, c.Wrong, c.Keys, c.Example, output)
}
