//go:build kafka

package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/testenv"
	"github.com/lagscale/lagscale/internal/testkit"
)

// streamsHandlerJar builds examples/java-streams-handler with Maven and
// returns the jar.
func streamsHandlerJar(t *testing.T) string {
	t.Helper()
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		t.Fatalf("building examples/java-streams-handler needs Maven (mvn) on PATH: install it, then run `make java-streams-handler`")
	}
	root := filepath.Join("..", "..", "examples", "java-streams-handler")
	if out, err := exec.Command(mvn, "-B", "-q", "-f", filepath.Join(root, "pom.xml"), "package").CombinedOutput(); err != nil {
		t.Fatalf("mvn package examples/java-streams-handler (`make java-streams-handler`): %v\n%s", err, out)
	}
	jar, err := filepath.Abs(filepath.Join(root, "target", "java-streams-handler.jar"))
	if err != nil {
		t.Fatal(err)
	}
	return jar
}

// adminView is what examples/java-streams-handler's Describe tool prints:
// the reference Admin API's describeStreamsGroups and
// listStreamsGroupOffsets, with read-committed end offsets.
type adminView struct {
	Group         string `json:"group"`
	State         string `json:"state"`
	GroupEpoch    int32  `json:"groupEpoch"`
	Subtopologies []struct {
		ID                      string   `json:"id"`
		SourceTopics            []string `json:"sourceTopics"`
		RepartitionSourceTopics []string `json:"repartitionSourceTopics"`
	} `json:"subtopologies"`
	Members []struct {
		MemberID    string   `json:"memberId"`
		ProcessID   string   `json:"processId"`
		MemberEpoch int32    `json:"memberEpoch"`
		Active      []string `json:"active"`
		Standby     []string `json:"standby"`
		Warmup      []string `json:"warmup"`
	} `json:"members"`
	Partitions []struct {
		Topic       string `json:"topic"`
		Partition   int32  `json:"partition"`
		Committed   int64  `json:"committed"`
		End         int64  `json:"end"`
		Repartition bool   `json:"repartition"`
	} `json:"partitions"`
}

func describeWithAdmin(t *testing.T, jar string, a *testkit.Apache, group string) adminView {
	t.Helper()
	out, err := exec.Command("java", "-Xmx128m", "-cp", jar, "dev.lagscale.example.streams.Describe", a.Plain, group).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("Describe tool: %v\n%s", err, testkit.Tail(string(stderr), 40))
	}
	var v adminView
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("Describe tool printed %q: %v", out, err)
	}
	return v
}

// TestStreamsGroup runs examples/java-streams-handler, a Kafka Streams
// application of two subtopologies (a repartition, then a count by key)
// on group.protocol=streams, and checks that the lag engine reads the
// group as the reference Admin API reports it: the topology's topics,
// per-partition committed offsets, end offsets and lag, and the members
// with their tasks. On Apache Kafka 3.9.1, which has no streams groups, the
// engine names the missing protocol.
func TestStreamsGroup(t *testing.T) {
	t.Run(testkit.KafkaVersion, streamsGroupOnKIP1071)
	t.Run(testkit.KafkaClassicVersion, streamsGroupUnsupported)
}

// The names of the word-count application's group and topics.
const streamsGroup, streamsInput, streamsOutput = "wordcount", "sin", "sin-counts"

// streamsGroupOnKIP1071 runs the application on a broker with streams
// groups, step by step: the engine reads the settled group, the operator
// reads its topology, wrong spec.topics stall, a frozen backlog reads as
// the Admin API says and is limited by the task count, and the counts
// come out exactly once.
func streamsGroupOnKIP1071(t *testing.T) {
	r := startStreamsApp(t)
	s := r.waitSettled(t)
	c, ec := streamsOperator(t, r.a, streamsGroup)
	checkOperatorReadsTopology(t, c, ec, s)
	checkTopologyMismatchStalls(t, c, ec)
	r.checkFrozenBacklog(t, c, ec)
	r.drainAndStop(t)
	checkCountedExactlyOnce(t, r.a)
}

// streamsApp is the running word-count application and the lag engine
// that reads its group.
type streamsApp struct {
	jar  string
	a    *testkit.Apache
	app  *testkit.Proc
	e    *lag.Engine
	sub  lag.Subscription
	snap lag.Snapshot // the last snapshot read, logged when the test fails
}

// startStreamsApp starts Apache Kafka with 300 records on the input topic,
// the application with two stream threads, and a lag engine subscribed to
// its group.
func startStreamsApp(t *testing.T) *streamsApp {
	r := &streamsApp{jar: streamsHandlerJar(t)}
	r.a = testkit.StartApache(t, testkit.KafkaVersion)
	testkit.CreateTopics(t, r.a, 3, streamsInput, streamsOutput)
	produce(t, r.a, streamsInput, 3, 100)

	env := append(os.Environ(),
		"KAFKA_BOOTSTRAP_SERVERS="+r.a.Plain,
		"KAFKA_TOPICS=",
		"KAFKA_CONSUMER_GROUP="+streamsGroup,
		"KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
		"KAFKA_AUTO_OFFSET_RESET=earliest",
		"KAFKA_GROUP_TYPE=streams",
		"LAGSCALE_CONSUMER=compat/"+streamsGroup,
		"STREAMS_INPUT_TOPIC="+streamsInput,
		"STREAMS_OUTPUT_TOPIC="+streamsOutput,
		"STREAMS_NUM_THREADS=2",
		"STREAMS_STATE_DIR="+t.TempDir(),
	)
	cmd := exec.Command("java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-jar", r.jar)
	cmd.Env = env
	r.app = testkit.Start(t, cmd)

	r.e = lag.NewEngine(lag.Options{})
	r.sub = lag.Subscription{
		Consumer:          lag.ConsumerKey{Namespace: "compat", Name: streamsGroup},
		Cluster:           lag.ClusterConfig{BootstrapServers: r.a.Bootstrap()},
		Group:             streamsGroup,
		GroupType:         lag.GroupStreams,
		OffsetResetPolicy: lag.ResetEarliest,
		PollInterval:      time.Second,
	}
	r.e.Register(r.sub)
	t.Cleanup(func() { r.e.Unregister(r.sub.Consumer) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last snapshot: %+v; streams %+v", r.snap, r.snap.Streams)
		}
	})
	return r
}

// poll runs one poll cycle and keeps the group's snapshot.
func (r *streamsApp) poll() lag.Snapshot {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = r.e.Poll(ctx, r.sub.Cluster.ID())
	r.snap, _ = r.e.Snapshot(r.sub.Consumer)
	return r.snap
}

// waitSettled waits until the application has started, the broker has
// created the repartition topic and assigned all tasks, and everything
// produced so far is counted; then it checks the topology the engine read
// and the requests of one cycle.
func (r *streamsApp) waitSettled(t *testing.T) *lag.StreamsInfo {
	testkit.WaitFor(t, 3*time.Minute, "the streams group to settle with every task assigned and no lag", func() bool {
		time.Sleep(time.Second)
		snap := r.poll()
		s := snap.Streams
		return !snap.Stale && s != nil && len(s.Subtopologies) == 2 && s.ActiveTasks > 0 &&
			s.AssignedActive == s.ActiveTasks && !snap.Rebalancing && snap.Members == 2 && snap.TotalLag == 0 &&
			snap.PartitionCount > 0
	})
	snap := r.snap
	s := snap.Streams
	t.Logf("streams group: %d subtopologies, %d active tasks, input %v, repartition %v, %d members in %d processes",
		len(s.Subtopologies), s.ActiveTasks, s.InputTopics, s.RepartitionTopics, snap.Members, s.Processes)
	if !slices.Equal(s.InputTopics, []string{streamsInput}) || len(s.RepartitionTopics) != 1 {
		t.Fatalf("input topics %v, repartition topics %v: want [%s] and one repartition topic", s.InputTopics, s.RepartitionTopics, streamsInput)
	}
	// 3 input partitions and a repartition topic of 3: 6 tasks; two
	// threads in one instance keep at most 3 instances busy.
	if s.ActiveTasks != 6 || s.ThreadsPerInstance != 2 || s.MaxInstances != 3 || s.Processes != 1 {
		t.Fatalf("active tasks %d, threads per instance %d, max instances %d, processes %d: want 6, 2, 3, 1",
			s.ActiveTasks, s.ThreadsPerInstance, s.MaxInstances, s.Processes)
	}
	if snap.GroupType != lag.GroupStreams {
		t.Fatalf("group type %q, want streams", snap.GroupType)
	}
	// One StreamsGroupDescribe per coordinator per cycle, and the
	// coordinator is remembered: no FindCoordinator once it is known.
	r.poll()
	byAPI, total := r.e.LastCycleRequests(r.sub.Cluster.ID())
	t.Logf("requests per cycle with one streams group: %d %v", total, byAPI)
	if byAPI["StreamsGroupDescribe"] != 1 || byAPI["FindCoordinator"] != 0 {
		t.Fatalf("requests per cycle %v: want one StreamsGroupDescribe and no FindCoordinator", byAPI)
	}
	return s
}

// checkOperatorReadsTopology: the operator reads the same group from an
// EventConsumer without spec.topics.
func checkOperatorReadsTopology(t *testing.T, c client.Client, ec *v1alpha1.EventConsumer, s *lag.StreamsInfo) {
	testenv.Eventually(t, 90*time.Second, func() error {
		got := &v1alpha1.EventConsumer{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(ec), got); err != nil {
			return err
		}
		want := append([]string{streamsInput}, s.RepartitionTopics...)
		slices.Sort(want)
		ls := got.Status.Lag
		if !slices.Equal(got.Status.Topics, want) || ls == nil || ls.Streams == nil || ls.Streams.ActiveTasks != 6 ||
			ls.Streams.Subtopologies != 2 || ls.Streams.ThreadsPerInstance != 2 || ls.GroupType != "Streams" {
			return fmt.Errorf("status.topics %v (want %v), status.lag %+v", got.Status.Topics, want, ls)
		}
		return nil
	})
}

// checkTopologyMismatchStalls: spec.topics other than the topology's
// source topics make the consumer Stalled, with both lists named.
func checkTopologyMismatchStalls(t *testing.T, c client.Client, ec *v1alpha1.EventConsumer) {
	wrong := ec.DeepCopy()
	wrong.ObjectMeta = metav1.ObjectMeta{Namespace: ec.Namespace, Name: "wordcount-wrong-topics"}
	wrong.Spec.Topics = []string{streamsOutput}
	mustCreate(t, c, wrong)
	testenv.Eventually(t, 60*time.Second, func() error {
		got := &v1alpha1.EventConsumer{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(wrong), got); err != nil {
			return err
		}
		st := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionStalled)
		if st == nil || st.Status != metav1.ConditionTrue || st.Reason != v1alpha1.ReasonTopologyMismatch ||
			!strings.Contains(st.Message, "spec.topics ["+streamsOutput+"] are not the source topics ["+streamsInput+"]") {
			return fmt.Errorf("Stalled %+v, want True with reason TopologyMismatch naming both lists", st)
		}
		return nil
	})
}

// checkFrozenBacklog freezes the application (SIGSTOP keeps its members
// in the group until their session times out) and produces a backlog, so
// that the engine and the Admin API read the same still offsets; the
// operator then asks for 15 replicas and is limited to the 3 the tasks
// keep busy, and says so. The application runs again afterwards.
func (r *streamsApp) checkFrozenBacklog(t *testing.T, c client.Client, ec *v1alpha1.EventConsumer) {
	r.app.Signal(t, syscall.SIGSTOP)
	produce(t, r.a, streamsInput, 3, 50)
	r.poll()
	admin := describeWithAdmin(t, r.jar, r.a, streamsGroup)
	snap := r.poll() // after the Admin read too: nothing moved between
	compareWithAdmin(t, snap, admin)
	if snap.Streams.InputLag != 150 || snap.Streams.RepartitionLag != 0 {
		t.Fatalf("input lag %d, repartition lag %d: want 150 and 0", snap.Streams.InputLag, snap.Streams.RepartitionLag)
	}

	// 150 records at 10 per replica ask for 15 replicas; 6 tasks over
	// 2 threads per instance keep 3 busy, and the remedy says so.
	testenv.Eventually(t, 40*time.Second, func() error {
		got := &v1alpha1.EventConsumer{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(ec), got); err != nil {
			return err
		}
		sl := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionScalingLimited)
		if got.Status.DesiredReplicas != 3 || sl == nil || sl.Reason != v1alpha1.ReasonAtTaskCount ||
			!strings.Contains(sl.Message, "num.stream.threads") || !strings.Contains(sl.Message, "6 active tasks") {
			return fmt.Errorf("desired replicas %d, ScalingLimited %+v: want 3 and AtTaskCount", got.Status.DesiredReplicas, sl)
		}
		t.Logf("ScalingLimited %s: %s", sl.Reason, sl.Message)
		return nil
	})
	r.app.Signal(t, syscall.SIGCONT)
}

// drainAndStop waits for the application to count the backlog, then stops
// it with SIGTERM, which it must answer with exit code 0.
func (r *streamsApp) drainAndStop(t *testing.T) {
	testkit.WaitFor(t, 2*time.Minute, "the application to count the backlog", func() bool {
		time.Sleep(time.Second)
		snap := r.poll()
		return !snap.Stale && snap.TotalLag == 0 && snap.Members == 2
	})
	r.app.Signal(t, syscall.SIGTERM)
	if code := r.app.Wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// checkCountedExactlyOnce: the first 50 values of each partition were
// produced twice (100, then 50 more), the others once, and the last count
// of each key says so.
func checkCountedExactlyOnce(t *testing.T, a *testkit.Apache) {
	want := func(p, i int) string {
		if i < 50 {
			return "2"
		}
		return "1"
	}
	complete := func(counts map[string]string) bool {
		for p := range 3 {
			for i := range 100 {
				if counts[strconv.Itoa(p)+"-"+strconv.Itoa(i)] != want(p, i) {
					return false
				}
			}
		}
		return true
	}
	counts := lastCounts(t, a, streamsOutput, complete)
	for p := range 3 {
		for i := range 100 {
			k := strconv.Itoa(p) + "-" + strconv.Itoa(i)
			if counts[k] != want(p, i) {
				t.Fatalf("count of %s is %q, want %s (%d keys counted)", k, counts[k], want(p, i), len(counts))
			}
		}
	}
}

// streamsGroupUnsupported: on Apache Kafka 3.9.1, which has no streams
// groups, the engine names the missing protocol.
func streamsGroupUnsupported(t *testing.T) {
	a := testkit.StartApache(t, testkit.KafkaClassicVersion)
	testkit.CreateTopics(t, a, 1, "sold")
	e := lag.NewEngine(lag.Options{})
	sub := lag.Subscription{
		Consumer:  lag.ConsumerKey{Namespace: "compat", Name: "old"},
		Cluster:   lag.ClusterConfig{BootstrapServers: a.Bootstrap()},
		Group:     "old",
		Topics:    []string{"sold"},
		GroupType: lag.GroupStreams,
	}
	e.Register(sub)
	t.Cleanup(func() { e.Unregister(sub.Consumer) })
	var s lag.Snapshot
	// A fresh broker answers COORDINATOR_NOT_AVAILABLE for a moment;
	// after that the describe reaches the coordinator.
	testkit.WaitFor(t, time.Minute, "the engine to read the group", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Poll(ctx, sub.Cluster.ID())
		s, _ = e.Snapshot(sub.Consumer)
		if !s.StreamsUnsupported {
			time.Sleep(500 * time.Millisecond)
		}
		return s.StreamsUnsupported
	})
	if !s.StreamsUnsupported || !strings.Contains(s.Error, "StreamsGroupDescribe (API key 89)") || !strings.Contains(s.Error, "KIP-1071") {
		t.Fatalf("StreamsUnsupported %v, error %q: want the missing protocol named", s.StreamsUnsupported, s.Error)
	}
}

// compareWithAdmin checks the engine's snapshot against the Admin API's
// view: the same topics, per-partition offsets and lag, members and tasks.
func compareWithAdmin(t *testing.T, snap lag.Snapshot, admin adminView) {
	t.Helper()
	var adminSources []string
	for _, st := range admin.Subtopologies {
		adminSources = append(adminSources, st.SourceTopics...)
		adminSources = append(adminSources, st.RepartitionSourceTopics...)
	}
	slices.Sort(adminSources)
	adminSources = slices.Compact(adminSources)
	engineTopics := append(slices.Clone(snap.Streams.InputTopics), snap.Streams.RepartitionTopics...)
	slices.Sort(engineTopics)
	if !slices.Equal(engineTopics, adminSources) {
		t.Fatalf("engine topics %v, Admin API source topics %v", engineTopics, adminSources)
	}
	if len(snap.Partitions) != len(admin.Partitions) {
		t.Fatalf("engine reads %d partitions, the Admin API %d", len(snap.Partitions), len(admin.Partitions))
	}
	for _, ap := range admin.Partitions {
		var pl *lag.PartitionLag
		for i := range snap.Partitions {
			if snap.Partitions[i].Topic == ap.Topic && snap.Partitions[i].Partition == ap.Partition {
				pl = &snap.Partitions[i]
			}
		}
		if pl == nil {
			t.Fatalf("engine has no %s/%d", ap.Topic, ap.Partition)
		}
		wantLag := ap.End - ap.Committed
		if ap.Committed < 0 {
			wantLag = ap.End // earliest: a fresh topic, nothing deleted
		}
		if pl.CommittedOffset != ap.Committed || pl.EndOffset != ap.End || pl.Lag != wantLag {
			t.Fatalf("%s/%d: engine committed %d end %d lag %d, Admin API committed %d end %d (lag %d)",
				ap.Topic, ap.Partition, pl.CommittedOffset, pl.EndOffset, pl.Lag, ap.Committed, ap.End, wantLag)
		}
	}
	if len(snap.Streams.Members) != len(admin.Members) || snap.Members != len(admin.Members) {
		t.Fatalf("engine members %d (%d described), Admin API %d", snap.Members, len(snap.Streams.Members), len(admin.Members))
	}
	for i, am := range admin.Members {
		m := snap.Streams.Members[i]
		if m.MemberID != am.MemberID || m.ProcessID != am.ProcessID || m.MemberEpoch != am.MemberEpoch ||
			!slices.Equal(m.Active, am.Active) || !slices.Equal(m.Standby, am.Standby) || !slices.Equal(m.Warmup, am.Warmup) {
			t.Fatalf("member %d: engine %+v, Admin API %+v", i, m, am)
		}
	}
	if snap.GroupEpoch != admin.GroupEpoch {
		t.Fatalf("group epoch: engine %d, Admin API %d", snap.GroupEpoch, admin.GroupEpoch)
	}
}

// lastCounts reads the output topic read-committed, keeping the last
// value of each key, until done says the counts are complete or a minute
// has passed.
func lastCounts(t *testing.T, a *testkit.Apache, topic string, done func(map[string]string) bool) map[string]string {
	t.Helper()
	cl := testkit.Client(t, a, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	counts := make(map[string]string)
	deadline := time.Now().Add(time.Minute)
	for !done(counts) && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { counts[string(r.Key)] = string(r.Value) })
	}
	return counts
}

// streamsOperator starts the control plane and the operator, and creates a
// groupType Streams EventConsumer of group without spec.topics.
func streamsOperator(t *testing.T, a *testkit.Apache, group string) (client.Client, *v1alpha1.EventConsumer) {
	t.Helper()
	setOperatorLogger()
	c := startOperatorWithControlPlane(t)
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "streams"}})
	ec := &v1alpha1.EventConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: "streams", Name: group}, Spec: v1alpha1.EventConsumerSpec{
		ConsumerGroup: group, GroupType: v1alpha1.GroupTypeStreams,
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: a.Bootstrap()},
		Handler: &v1alpha1.HandlerSpec{Image: "java-streams-handler:1"},
		Scaling: v1alpha1.ScalingSpec{
			Policy: v1alpha1.PolicyLagThreshold, LagThreshold: ptr[int64](10), MaxReplicas: ptr[int32](20),
			PollIntervalSeconds: ptr[int32](1), OffsetResetPolicy: v1alpha1.OffsetResetEarliest,
		},
	}}
	mustCreate(t, c, ec)
	return c, ec
}
