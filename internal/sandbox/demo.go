package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/produce"
)

// DemoOptions configure RunDemo. Zero values take the defaults in
// brackets.
type DemoOptions struct {
	// Out receives one line per poll and the summary.
	Out io.Writer
	// ChartPath is where the PNG chart goes; empty writes none.
	ChartPath string
	// Namespace and Name of the EventConsumer [default/demo].
	Namespace, Name string
	// Topic [demo-orders] with Partitions [12].
	Topic      string
	Partitions int32
	// WorkMS is the example handler's cost per record [20].
	WorkMS int
	// Rate is the steady inflow in records/s [100]; the burst is
	// BurstFactor times it [10] for Burst [60s], between Steady [45s] and
	// After [60s] of steady load; then the load stops and the demo waits
	// up to IdleMax [4m] for replicas to return to minReplicas.
	Rate        float64
	BurstFactor float64
	Steady      time.Duration
	Burst       time.Duration
	After       time.Duration
	IdleMax     time.Duration
	// ScaleDownStabilizationSeconds [60] and PollIntervalSeconds [5].
	ScaleDownStabilizationSeconds int32
	PollIntervalSeconds           int32
	// GroupType is "" for the Go example handler on a consumer group, or
	// DemoGroupStreams for the Kafka Streams example on a streams group
	// (Apache Kafka only), with defaults of its own (see streamsDefaults).
	GroupType string
}

func (o *DemoOptions) defaults() {
	if o.GroupType == DemoGroupStreams {
		o.streamsDefaults()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Namespace, "default")
	def(&o.Name, "demo")
	def(&o.Topic, "demo-orders")
	if o.Partitions == 0 {
		o.Partitions = 12
	}
	if o.WorkMS == 0 {
		o.WorkMS = 20
	}
	if o.Rate == 0 {
		o.Rate = 100
	}
	if o.BurstFactor == 0 {
		o.BurstFactor = 5
	}
	if o.Steady == 0 {
		o.Steady = 45 * time.Second
	}
	if o.Burst == 0 {
		o.Burst = 60 * time.Second
	}
	if o.After == 0 {
		o.After = 60 * time.Second
	}
	if o.IdleMax == 0 {
		o.IdleMax = 4 * time.Minute
	}
	if o.ScaleDownStabilizationSeconds == 0 {
		o.ScaleDownStabilizationSeconds = 60
	}
	if o.PollIntervalSeconds == 0 {
		o.PollIntervalSeconds = 5
	}
}

// Sample is one poll of the EventConsumer's status.
type Sample struct {
	At              time.Duration // since the load started
	Phase           string
	Inflow          float64
	Lag             int64
	LagSeconds      float64
	DesiredReplicas int32
	Replicas        int32
	ReadyReplicas   int32
	Health          string
}

// DemoResult summarises a demo run.
type DemoResult struct {
	Samples        []Sample
	PeakLag        int64
	PeakLagSeconds float64
	// DrainTime is from the end of the burst until the time lag is back
	// under maxLagSeconds/6 (5 s for the default 30 s); -1 if it never was.
	DrainTime      time.Duration
	ReplicaSeconds float64
	ScaleEvents    int
	MaxReplicas    int32
	Produced       int64
	Handled        int64
	BackToMin      bool
	TotalTime      time.Duration
	MaxLagSeconds  int32
	MinReplicas    int32
	BurstStart     time.Duration
	BurstEnd       time.Duration
	LoadEnd        time.Duration
	ChartPath      string
	// Learned is the consumer's status.learned at the last sample: the
	// demo sets no throughputPerReplica, so the capacity is measured.
	Learned *v1alpha1.LearnedStatus
	// ActiveTasks and MaxInstances are the streams group's tasks and the
	// instances they keep busy (the scale bound), from the status; Counts
	// compares the Streams phase's output with its input. Zero and nil
	// for the other group types.
	ActiveTasks, MaxInstances int32
	Counts                    *StreamsCounts
}

// DemoConsumer is the demo's EventConsumer.
func DemoConsumer(o DemoOptions, bootstrap string) *v1alpha1.EventConsumer {
	o.defaults()
	if o.GroupType == DemoGroupStreams {
		return streamsConsumer(o, bootstrap)
	}
	return &v1alpha1.EventConsumer{
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace},
		Spec: v1alpha1.EventConsumerSpec{
			Topics:        []string{o.Topic},
			ConsumerGroup: o.Name + "-handler",
			Kafka:         v1alpha1.KafkaConnection{BootstrapServers: []string{bootstrap}},
			Handler: &v1alpha1.HandlerSpec{
				Image: ExampleHandlerImage,
				Env: []corev1.EnvVar{
					{Name: "WORK_MS", Value: fmt.Sprint(o.WorkMS)},
					// One partition at a time per replica: capacity grows
					// with replicas, as with a CPU-bound handler.
					{Name: "CONCURRENCY", Value: "1"},
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

// CreateTopic creates a topic unless it exists.
func CreateTopic(ctx context.Context, bootstrap, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// GroupCommitted is the sum of the group's committed offsets on topic.
// Retriable errors are retried for up to a minute: a fresh Apache Kafka
// answers COORDINATOR_NOT_AVAILABLE while it creates __consumer_offsets
// (kfake has a coordinator at once).
func GroupCommitted(ctx context.Context, bootstrap, group, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var offs kadm.OffsetResponses
	var fetchErr error
	if err := waitFor(ctx, time.Minute, func() (bool, error) {
		offs, fetchErr = kadm.NewClient(cl).FetchOffsets(ctx, group)
		if fetchErr != nil && kerr.IsRetriable(fetchErr) {
			return false, fetchErr
		}
		return true, nil
	}); err != nil {
		return 0, fmt.Errorf("fetch the offsets of group %s: %w", group, err)
	}
	if errors.Is(fetchErr, kerr.GroupIDNotFound) {
		return 0, nil
	}
	if fetchErr != nil {
		return 0, fetchErr
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At > 0 {
			sum += o.At
		}
	})
	return sum, nil
}

// applyConsumer creates or updates the EventConsumer's spec.
func applyConsumer(ctx context.Context, c client.Client, ec *v1alpha1.EventConsumer) error {
	err := c.Create(ctx, ec)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur := &v1alpha1.EventConsumer{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(ec), cur); err != nil {
		return err
	}
	cur.Spec = ec.Spec
	return c.Update(ctx, cur)
}

// RunDemo applies the demo EventConsumer, drives steady load, a burst well
// above one replica's capacity, steady load again and then nothing, and
// prints one line per lag poll and a summary.
func RunDemo(ctx context.Context, s *Sandbox, o DemoOptions) (*DemoResult, error) {
	o.defaults()
	out := o.Out
	bootstrap := s.KafkaAddr()
	ec := DemoConsumer(o, bootstrap)
	if err := checkDemoGroupType(s, o); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "== demo: EventConsumer %s/%s (group type %s, image %s, %s=%d, %d partitions, maxLagSeconds 30, minReplicas 1)\n",
		o.Namespace, o.Name, groupTypeOf(ec), ec.Spec.Handler.Image, ec.Spec.Handler.Env[0].Name, o.WorkMS, o.Partitions)
	startCommitted, err := startDemoConsumer(ctx, s, o, ec)
	if err != nil {
		return nil, err
	}

	loadLen := o.Steady + o.Burst + o.After
	res := &DemoResult{
		MaxLagSeconds: 30, MinReplicas: 1,
		BurstStart: o.Steady, BurstEnd: o.Steady + o.Burst, LoadEnd: loadLen,
		DrainTime: -1, ChartPath: o.ChartPath,
	}
	fmt.Fprintf(out, "== load: %.0f/s for %s, burst %.0f/s for %s, %.0f/s for %s, then idle\n",
		o.Rate, o.Steady, o.Rate*o.BurstFactor, o.Burst, o.Rate, o.After)
	fmt.Fprintf(out, "%6s  %-6s %8s %8s %9s %9s  %s\n", "time", "phase", "inflow/s", "lag", "time lag", "replicas", "health")

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	start := time.Now()
	prodDone := startDemoLoad(loadCtx, bootstrap, o)
	produced, err := watchDemo(ctx, s, ec, o, res, start, prodDone)
	if err != nil {
		return res, err
	}
	res.TotalTime = time.Since(start)
	if produced != nil {
		res.Produced = produced.r.Acked
	}
	end, err := GroupCommitted(ctx, bootstrap, ec.Spec.ConsumerGroup, o.Topic)
	if err != nil {
		return res, err
	}
	res.Handled = end - startCommitted
	if o.GroupType == DemoGroupStreams {
		c, err := CheckStreamsCounts(ctx, bootstrap, o.Topic, streamsOutputTopic(o))
		if err != nil {
			return res, fmt.Errorf("read the counts: %w", err)
		}
		res.Counts = &c
	}
	res.summarise()
	res.print(out)
	res.printStreams(out, streamsOutputTopic(o))
	if o.ChartPath != "" {
		if err := WriteChart(o.ChartPath, res); err != nil {
			return res, fmt.Errorf("write chart: %w", err)
		}
		fmt.Fprintf(out, "chart:                 %s\n", o.ChartPath)
	}
	return res, nil
}

// startDemoConsumer creates the topic, applies the EventConsumer and waits
// for its handler pod to join the group. It returns the group's committed
// offsets before the load, so that a rerun counts only its own records.
func startDemoConsumer(ctx context.Context, s *Sandbox, o DemoOptions, ec *v1alpha1.EventConsumer) (int64, error) {
	bootstrap := s.KafkaAddr()
	if err := CreateTopic(ctx, bootstrap, o.Topic, o.Partitions); err != nil {
		return 0, err
	}
	if o.GroupType == DemoGroupStreams {
		if err := CreateTopic(ctx, bootstrap, streamsOutputTopic(o), o.Partitions); err != nil {
			return 0, err
		}
		if err := waitTransactionCoordinator(ctx, bootstrap); err != nil {
			return 0, err
		}
	}
	startCommitted, err := GroupCommitted(ctx, bootstrap, ec.Spec.ConsumerGroup, o.Topic)
	if err != nil {
		return 0, err
	}
	if err := applyConsumer(ctx, s.Client, ec); err != nil {
		return 0, fmt.Errorf("apply the demo EventConsumer: %w", err)
	}
	fmt.Fprintln(o.Out, "== waiting for the handler pod to run and join the group")
	if err := waitFor(ctx, 90*time.Second, func() (bool, error) {
		cur := &v1alpha1.EventConsumer{}
		if err := s.Client.Get(ctx, client.ObjectKeyFromObject(ec), cur); err != nil {
			return false, err
		}
		return cur.Status.ReadyReplicas >= 1 && cur.Status.Lag != nil && cur.Status.Lag.Members >= 1 && tasksRunning(cur.Status.Lag), nil
	}); err != nil {
		return 0, fmt.Errorf("the demo consumer did not start: %w (see %s/logs/operator.log and `lagscale sandbox logs`)", err, s.Dir())
	}
	return startCommitted, nil
}

// prodResult is what the demo's producer did.
type prodResult struct {
	r   produce.Result
	err error
}

// startDemoLoad produces the demo's load profile until it ends or ctx is
// cancelled; the result arrives on the channel.
func startDemoLoad(ctx context.Context, bootstrap string, o DemoOptions) <-chan prodResult {
	profile := produce.Profile{Segments: []produce.Segment{
		{Shape: produce.ShapeConstant, Duration: o.Steady, Factor: 1},
		{Shape: produce.ShapeBurst, Duration: o.Burst, Factor: o.BurstFactor},
		{Shape: produce.ShapeConstant, Duration: o.After, Factor: 1},
	}}
	prodDone := make(chan prodResult, 1)
	go func() {
		r, err := produce.Run(ctx, produce.Config{
			Brokers: []string{bootstrap}, Topic: o.Topic, Rate: o.Rate, Profile: profile,
			Duration: o.Steady + o.Burst + o.After, Size: 100, Keys: produce.KeysRandom, ReportEvery: time.Hour,
		}, io.Discard)
		prodDone <- prodResult{r, err}
	}()
	return prodDone
}

// watchDemo prints a line for every new lag poll in the consumer's status
// and records it in res, until the replicas are back at minReplicas with
// no lag after the load, or IdleMax of idle has passed. It returns what
// the producer did, nil if it had not finished.
func watchDemo(ctx context.Context, s *Sandbox, ec *v1alpha1.EventConsumer, o DemoOptions, res *DemoResult, start time.Time, prodDone <-chan prodResult) (*prodResult, error) {
	var (
		lastUpdated time.Time
		lastDesired int32 = -1
		produced    *prodResult
	)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return produced, ctx.Err()
		case p := <-prodDone:
			produced = &p
			if p.err != nil && !errors.Is(p.err, context.Canceled) {
				return produced, fmt.Errorf("produce: %w", p.err)
			}
		case <-tick.C:
		}
		el := time.Since(start)
		cur := &v1alpha1.EventConsumer{}
		if err := s.Client.Get(ctx, client.ObjectKeyFromObject(ec), cur); err != nil {
			continue
		}
		st := cur.Status
		if st.Learned != nil {
			res.Learned = st.Learned.DeepCopy()
		}
		if st.Lag != nil {
			res.observeStreams(st.Lag.Streams)
		}
		if st.Lag == nil || st.Lag.Updated == nil || !st.Lag.Updated.After(lastUpdated) {
			continue
		}
		lastUpdated = st.Lag.Updated.Time
		smp := Sample{
			At: el, Phase: phaseAt(el, o), Inflow: st.Lag.ProductionRate, Lag: st.Lag.Total,
			LagSeconds: st.Lag.Seconds, DesiredReplicas: st.DesiredReplicas, Replicas: st.Replicas,
			ReadyReplicas: st.ReadyReplicas, Health: health(cur),
		}
		fmt.Fprintf(o.Out, "%5.0fs  %-6s %8.0f %8d %8.1fs %5d/%-3d  %s\n", el.Seconds(), smp.Phase, smp.Inflow, smp.Lag, smp.LagSeconds, smp.ReadyReplicas, smp.DesiredReplicas, smp.Health)
		res.record(smp, lastDesired)
		lastDesired = smp.DesiredReplicas
		if produced != nil && el > res.LoadEnd {
			if res.atMin(smp) {
				res.BackToMin = true
				return produced, nil
			}
			if el > res.LoadEnd+o.IdleMax {
				fmt.Fprintf(o.Out, "== replicas did not return to minReplicas within %s of idle\n", o.IdleMax)
				return produced, nil
			}
		}
	}
}

// record adds a sample: a scale event when the desired replicas changed
// from lastDesired (-1 for the first sample), and the drain time when the
// time lag first falls to a sixth of the target after the burst.
func (r *DemoResult) record(smp Sample, lastDesired int32) {
	r.Samples = append(r.Samples, smp)
	if lastDesired >= 0 && smp.DesiredReplicas != lastDesired {
		r.ScaleEvents++
	}
	if smp.At > r.BurstEnd && r.DrainTime < 0 && smp.LagSeconds <= float64(r.MaxLagSeconds)/6 {
		r.DrainTime = smp.At - r.BurstEnd
	}
}

// atMin reports whether a sample has the replicas back at minReplicas with
// no lag.
func (r *DemoResult) atMin(smp Sample) bool {
	return smp.DesiredReplicas <= r.MinReplicas && smp.Replicas <= r.MinReplicas && smp.Lag == 0
}

func phaseAt(el time.Duration, o DemoOptions) string {
	switch {
	case el < o.Steady:
		return "steady"
	case el < o.Steady+o.Burst:
		return "burst"
	case el < o.Steady+o.Burst+o.After:
		return "steady"
	}
	return "idle"
}

// health is the Ready condition's reason and the partitions that are not OK.
func health(ec *v1alpha1.EventConsumer) string {
	h := "?"
	for _, c := range ec.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady {
			h = c.Reason
		}
	}
	bad := map[string]int{}
	if ec.Status.Lag != nil {
		for _, p := range ec.Status.Lag.Partitions {
			if p.Health != "" && p.Health != "OK" {
				bad[p.Health]++
			}
		}
	}
	for k, n := range bad {
		h += fmt.Sprintf(" %d×%s", n, k)
	}
	return h
}

// summarise computes the peaks and integrals from the samples.
func (r *DemoResult) summarise() {
	for i, s := range r.Samples {
		r.PeakLag = max(r.PeakLag, s.Lag)
		r.PeakLagSeconds = math.Max(r.PeakLagSeconds, s.LagSeconds)
		r.MaxReplicas = max(r.MaxReplicas, s.Replicas)
		if i > 0 {
			r.ReplicaSeconds += float64(r.Samples[i-1].Replicas) * (s.At - r.Samples[i-1].At).Seconds()
		}
	}
}

func (r *DemoResult) print(w io.Writer) {
	drain := "did not drain"
	if r.DrainTime >= 0 {
		drain = r.DrainTime.Round(time.Second).String()
	}
	fmt.Fprintf(w, "\n== summary (%s)\n", r.TotalTime.Round(time.Second))
	fmt.Fprintf(w, "peak lag:              %d records\n", r.PeakLag)
	fmt.Fprintf(w, "peak time lag:         %.1fs (target maxLagSeconds %d)\n", r.PeakLagSeconds, r.MaxLagSeconds)
	fmt.Fprintf(w, "drain after the burst: %s (time lag back under %ds)\n", drain, r.MaxLagSeconds/6)
	fmt.Fprintf(w, "replica-seconds:       %.0f (most replicas %d)\n", r.ReplicaSeconds, r.MaxReplicas)
	fmt.Fprintf(w, "scale events:          %d\n", r.ScaleEvents)
	fmt.Fprintf(w, "records:               %d produced, %d handled (committed by the group)\n", r.Produced, r.Handled)
	fmt.Fprintf(w, "back to minReplicas:   %v\n", r.BackToMin)
	fmt.Fprintf(w, "learned (no throughputPerReplica given): %s\n", learnedLine(r.Learned))
}

// learnedLine says what the autoscaler learned, from status.learned.
func learnedLine(l *v1alpha1.LearnedStatus) string {
	if l == nil {
		return "nothing yet"
	}
	var parts []string
	if l.CapacityPerReplica != nil {
		parts = append(parts, fmt.Sprintf("capacity %.0f records/s per replica", *l.CapacityPerReplica))
	}
	if l.ScaleUpDelaySeconds != nil {
		parts = append(parts, fmt.Sprintf("scale-up delay %.0fs", *l.ScaleUpDelaySeconds))
	}
	if l.RebalancePauseSeconds != nil {
		parts = append(parts, fmt.Sprintf("rebalance pause %.0fs", *l.RebalancePauseSeconds))
	}
	if len(parts) == 0 {
		return "nothing yet"
	}
	return strings.Join(parts, ", ")
}

// checkDemoGroupType refuses a group type the sandbox's broker cannot run
// before anything is applied.
func checkDemoGroupType(s *Sandbox, o DemoOptions) error {
	switch o.GroupType {
	case "":
		return nil
	case DemoGroupStreams:
		if s.KafkaKind() != KafkaApache {
			return fmt.Errorf("the Streams demo needs Apache Kafka (kfake has no streams groups): run `make demo KAFKA=apache GROUP_TYPE=streams`, or `lagscale sandbox up --kafka apache --demo --group-type streams`")
		}
		return nil
	}
	return fmt.Errorf("unknown demo group type %q: want %q or none", o.GroupType, DemoGroupStreams)
}

// groupTypeOf is the consumer's group type as the spec says it, Classic
// when it says none.
func groupTypeOf(ec *v1alpha1.EventConsumer) v1alpha1.GroupType {
	if ec.Spec.GroupType == "" {
		return v1alpha1.GroupTypeClassic
	}
	return ec.Spec.GroupType
}

// waitFor polls cond every 500 ms until it holds, fails or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("timed out after %s: %w", timeout, last)
			}
			return fmt.Errorf("timed out after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
