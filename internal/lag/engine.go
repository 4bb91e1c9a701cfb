package lag

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Options configures an Engine. The zero value works.
type Options struct {
	// Logger receives transition logs (cluster unreachable, recovered).
	Logger logr.Logger
	// Registerer registers the engine's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// OnChange is called after a cycle for every consumer whose snapshot
	// changed in anything but its Time. It must not block for long; it is
	// called from the cluster's poll goroutine without engine locks held.
	OnChange func(ConsumerKey)
	// OnUnchanged is called after a cycle for every consumer polled whose
	// snapshot did not change but its Time, so that a decision that
	// depends on time (a stabilization window running out) is taken
	// without a reconcile per poll. The same rules as OnChange apply.
	OnUnchanged func(ConsumerKey)
	// Now is the clock stamped on snapshots; nil means time.Now.
	Now func() time.Time
	// HistorySize bounds the points kept per partition history; default 64.
	HistorySize int
	// HealthWindow is the number of poll intervals over which rates are
	// smoothed and health is judged; default 5.
	HealthWindow int
	// RequestTimeout bounds one poll cycle; default 10s.
	RequestTimeout time.Duration
	// MaxBackoff caps the delay between cycles of a failing cluster; the
	// delay doubles from the poll interval up to it. Default 2m.
	MaxBackoff time.Duration
}

// Engine polls Kafka for every registered Subscription and keeps the latest
// Snapshot of each. It is safe for concurrent use.
type Engine struct {
	opts    Options
	log     logr.Logger
	metrics *metrics

	mu       sync.Mutex
	ctx      context.Context // set by Start; nil before
	stopped  bool
	subs     map[ConsumerKey]Subscription
	clusters map[string]*cluster
	snaps    map[ConsumerKey]Snapshot
}

// NewEngine returns an Engine; call Start to run its poll loops.
func NewEngine(opts Options) *Engine {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HistorySize <= 0 {
		opts.HistorySize = DefaultHistorySize
	}
	if opts.HealthWindow <= 0 {
		opts.HealthWindow = DefaultHealthWindow
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 2 * time.Minute
	}
	return &Engine{
		opts:     opts,
		log:      opts.Logger.WithName("lag"),
		metrics:  newMetrics(opts.Registerer),
		subs:     make(map[ConsumerKey]Subscription),
		clusters: make(map[string]*cluster),
		snaps:    make(map[ConsumerKey]Snapshot),
	}
}

// Start runs the poll loops until ctx is done, then closes every client. It
// implements controller-runtime's manager.Runnable.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.ctx != nil {
		e.mu.Unlock()
		return errors.New("lag engine already started")
	}
	e.ctx = ctx
	for _, c := range e.clusters {
		c.start(ctx)
	}
	e.mu.Unlock()

	<-ctx.Done()

	e.mu.Lock()
	e.stopped = true
	cs := slices.Collect(maps.Values(e.clusters))
	e.mu.Unlock()
	for _, c := range cs {
		c.stop()
	}
	return nil
}

// Register adds or updates a subscription. Registering an unchanged
// subscription does nothing; moving a consumer to another cluster identity
// (new servers or a changed Secret) unregisters it from the old cluster,
// closing that client if nobody else uses it.
func (e *Engine) Register(sub Subscription) {
	sub = sub.normalized()
	id := sub.Cluster.ID()

	e.mu.Lock()
	var closing *cluster
	old, had := e.subs[sub.Consumer]
	if had && reflect.DeepEqual(old, sub) {
		e.mu.Unlock()
		return
	}
	if had {
		if oldID := old.Cluster.ID(); oldID != id {
			closing = e.detachLocked(sub.Consumer, oldID)
		}
	}
	e.subs[sub.Consumer] = sub
	c, ok := e.clusters[id]
	if !ok {
		c = newCluster(e, id, sub.Cluster)
		e.clusters[id] = c
		if e.ctx != nil && !e.stopped {
			c.start(e.ctx)
		}
	}
	c.subs[sub.Consumer] = sub
	e.mu.Unlock()

	if closing != nil {
		go closing.stop()
	}
	if had {
		c.wakeUp() // the change may shorten the interval or add topics
	}
}

// Unregister removes a consumer. Removing the last consumer of a cluster
// stops its loop and closes its client.
func (e *Engine) Unregister(key ConsumerKey) {
	e.mu.Lock()
	sub, ok := e.subs[key]
	if !ok {
		e.mu.Unlock()
		return
	}
	closing := e.detachLocked(key, sub.Cluster.ID())
	delete(e.subs, key)
	delete(e.snaps, key)
	e.mu.Unlock()
	if closing != nil {
		go closing.stop()
	}
}

// detachLocked removes key from cluster id and returns the cluster when it
// became empty and must be stopped.
func (e *Engine) detachLocked(key ConsumerKey, id string) *cluster {
	c, ok := e.clusters[id]
	if !ok {
		return nil
	}
	delete(c.subs, key)
	if len(c.subs) > 0 {
		return nil
	}
	delete(e.clusters, id)
	shared := false
	for _, other := range e.clusters {
		shared = shared || other.name == c.name
	}
	if !shared {
		e.metrics.forget(c.name)
	}
	return c
}

// Snapshot returns the latest snapshot of a consumer, false when no cycle
// has produced one yet.
func (e *Engine) Snapshot(key ConsumerKey) (Snapshot, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.snaps[key]
	if !ok {
		return Snapshot{}, false
	}
	s.Partitions = slices.Clone(s.Partitions)
	s.MissingTopics = slices.Clone(s.MissingTopics)
	s.TopicErrors = slices.Clone(s.TopicErrors)
	return s, true
}

// ClusterStatus returns the connection state of a cluster by ID, false when
// no consumer uses that cluster.
func (e *Engine) ClusterStatus(id string) (ClusterStatus, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.clusters[id]
	if !ok {
		return ClusterStatus{}, false
	}
	st := c.status
	st.Brokers = slices.Clone(st.Brokers)
	st.Consumers = len(c.subs)
	return st, true
}

// LastCycleRequests returns how many Kafka requests the last completed cycle
// of cluster id sent, by API name, and their total.
func (e *Engine) LastCycleRequests(id string) (map[string]int, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.clusters[id]
	if !ok {
		return nil, 0
	}
	return maps.Clone(c.lastByAPI), c.status.LastCycleRequests
}

// PollNow asks the loop of the consumer's cluster to run a cycle now rather
// than at its next tick. It does not wait.
func (e *Engine) PollNow(key ConsumerKey) {
	e.mu.Lock()
	sub, ok := e.subs[key]
	var c *cluster
	if ok {
		c = e.clusters[sub.Cluster.ID()]
	}
	e.mu.Unlock()
	if c != nil {
		c.wakeUp()
	}
}

// Poll runs one cycle of cluster id now and waits for it, serialised with the
// cluster's loop. It returns the cluster-level error of the cycle, if any.
// It works whether or not Start runs, so tests and benchmarks can drive
// cycles one at a time.
func (e *Engine) Poll(ctx context.Context, id string) error {
	e.mu.Lock()
	c, ok := e.clusters[id]
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("no consumer registered on cluster %s", id)
	}
	return c.cycle(ctx)
}

// setSnapshots stores the snapshots of a cycle for the subscriptions that
// are still registered unchanged on c, and returns the consumers whose
// snapshot changed and those whose snapshot did not.
func (e *Engine) setSnapshots(c *cluster, snaps map[ConsumerKey]Snapshot, used map[ConsumerKey]Subscription) (changed, unchanged []ConsumerKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	growth := make(map[ConsumerKey]int64, len(snaps))
	for key, s := range snaps {
		cur, ok := c.subs[key]
		if !ok || !reflect.DeepEqual(cur, used[key]) {
			continue // unregistered or changed while we polled
		}
		old, had := e.snaps[key]
		e.snaps[key] = s
		if !had || !sameSnapshot(old, s) {
			changed = append(changed, key)
			growth[key] = s.TotalLag - old.TotalLag
		} else {
			unchanged = append(unchanged, key)
		}
	}
	byKey := func(a, b ConsumerKey) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	}
	// The consumers whose lag grew most are told first: the callbacks
	// decide on each in turn, and among thousands whose lag moves a
	// little, the one a backlog just reached must not wait for the
	// others (nor for its namespace's place in the alphabet).
	slices.SortFunc(changed, func(a, b ConsumerKey) int {
		return cmp.Or(cmp.Compare(growth[b], growth[a]), byKey(a, b))
	})
	slices.SortFunc(unchanged, byKey)
	return changed, unchanged
}

// sameSnapshot compares everything but the read time and the poll count,
// which change every cycle.
func sameSnapshot(a, b Snapshot) bool {
	a.Time, b.Time = time.Time{}, time.Time{}
	a.Polls, b.Polls = 0, 0
	return reflect.DeepEqual(a, b)
}

// cluster is one Kafka connection, its poll loop and its history.
type cluster struct {
	e    *Engine
	id   string
	name string
	cfg  ClusterConfig

	client *kgo.Client
	adm    *kadm.Client
	cfgErr error
	hook   *requestHook

	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	stopMu  sync.Once
	started bool

	// Guarded by e.mu.
	subs      map[ConsumerKey]Subscription
	status    ClusterStatus
	lastByAPI map[string]int

	// Owned by whoever holds cycleMu.
	cycleMu  sync.Mutex
	parts    map[tp]*partState
	groups   map[string]*groupState
	skips    map[skipKey]skip // markers and aborted records after a commit (markers.go)
	failures int
	reach    reachability // for logs on transitions only

	// streamsCoord are the coordinators of streams groups (streams.go),
	// owned by whoever holds cycleMu.
	streamsCoord map[string]int32
}

// reachability is what the last cycle learned about a cluster, so that
// "unreachable" and "reachable" are logged once per transition.
type reachability int

const (
	reachUnknown reachability = iota // no cycle finished yet
	reachUp                          // the last cycle read the cluster
	reachDown                        // the last cycle failed
)

func newCluster(e *Engine, id string, cfg ClusterConfig) *cluster {
	c := &cluster{
		e:      e,
		id:     id,
		name:   cfg.Name(),
		cfg:    cfg,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		subs:   make(map[ConsumerKey]Subscription),
		parts:  make(map[tp]*partState),
		groups: make(map[string]*groupState),
	}
	c.status = ClusterStatus{ID: id, Name: c.name}
	c.hook = &requestHook{cluster: c.name, m: e.metrics}
	opts, err := clientOptions(cfg, e.opts.RequestTimeout)
	if err == nil {
		opts = append(opts, kgo.WithHooks(c.hook), kgo.WithLogger(kgoLogger{log: e.log.WithValues("cluster", c.name)}))
		c.client, err = kgo.NewClient(opts...)
	}
	if err != nil {
		c.cfgErr = fmt.Errorf("invalid Kafka connection settings: %w", err)
		return c
	}
	c.adm = kadm.NewClient(c.client)
	return c
}

// start launches the poll loop. Called with e.mu held.
func (c *cluster) start(ctx context.Context) {
	if c.started {
		return
	}
	c.started = true
	ctx, c.cancel = context.WithCancel(ctx)
	go c.run(ctx)
}

// stop ends the poll loop and closes the client.
func (c *cluster) stop() {
	c.stopMu.Do(func() {
		if c.cancel != nil {
			c.cancel()
			<-c.done
		}
		c.cycleMu.Lock() // wait for a running Poll
		defer c.cycleMu.Unlock()
		if c.client != nil {
			c.client.Close()
		}
	})
}

func (c *cluster) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *cluster) run(ctx context.Context) {
	defer close(c.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-c.wake:
		}
		started := time.Now()
		_ = c.cycle(ctx) // the cycle records its error in the status and snapshots
		if ctx.Err() != nil {
			return
		}
		timer.Reset(c.nextDelay(time.Since(started)))
	}
}

// interval is the shortest poll interval among the cluster's subscriptions.
// Called with e.mu held.
func (c *cluster) intervalLocked() time.Duration {
	d := time.Duration(0)
	for _, s := range c.subs {
		if d == 0 || s.PollInterval < d {
			d = s.PollInterval
		}
	}
	if d == 0 {
		d = DefaultPollInterval
	}
	return d
}

// nextDelay is the time from the end of a cycle that took took to the
// start of the next. Polls start one interval apart, however long the
// cycle and the decisions on its snapshots took (the next starts at once
// when they took longer), so that a poll cadence promised in the spec
// holds at scale. After a failure the interval is doubled per consecutive
// failure up to MaxBackoff (but never below the interval), and counted
// from the end of the failed cycle.
func (c *cluster) nextDelay(took time.Duration) time.Duration {
	c.e.mu.Lock()
	interval := c.intervalLocked()
	c.e.mu.Unlock()
	c.cycleMu.Lock()
	failures := c.failures
	c.cycleMu.Unlock()
	if failures == 0 {
		return max(interval-took, 0)
	}
	d := interval
	for i := 0; i < failures && d < c.e.opts.MaxBackoff; i++ {
		d *= 2
	}
	return max(min(d, c.e.opts.MaxBackoff), interval)
}

// kgoLogger forwards franz-go's warnings and errors to logr at a debug
// level; franz-go never logs SASL credentials.
type kgoLogger struct{ log logr.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l.log.V(1).Info(msg, append([]any{"kgoLevel", level.String()}, keyvals...)...)
}
