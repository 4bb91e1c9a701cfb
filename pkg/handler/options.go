package handler

import (
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Option changes how Run consumes. Options are applied in order.
type Option func(*options)

type options struct {
	cfg             *Config
	getenv          func(string) string
	logger          *logr.Logger
	concurrency     int
	maxPollRecords  int
	attempts        int
	initialBackoff  time.Duration
	maxBackoff      time.Duration
	shutdownTimeout time.Duration
	commitInterval  time.Duration
	callTimeout     time.Duration
	dlAttempts      int
	dlInitial       time.Duration
	dlMax           time.Duration
	httpAddr        *string
	registerer      prometheus.Registerer
	gatherer        prometheus.Gatherer
	clientOpts      []kgo.Opt
}

// Defaults of the options.
const (
	DefaultConcurrency     = 16
	DefaultMaxPollRecords  = 1000
	DefaultAttempts        = 5
	DefaultInitialBackoff  = 100 * time.Millisecond
	DefaultMaxBackoff      = 10 * time.Second
	DefaultShutdownTimeout = 25 * time.Second
	DefaultCommitInterval  = time.Second
	// DefaultCallTimeout bounds one call of the handler function. It is
	// half of franz-go's default rebalance timeout (60s), so that a stuck
	// call gives up in time for the member to commit and hand its
	// partitions over instead of being dropped from the group.
	DefaultCallTimeout = 30 * time.Second
	// DefaultDeadLetterAttempts is how often a record is tried on the
	// dead-letter topic before its partition stops.
	DefaultDeadLetterAttempts = 5
)

func defaultOptions() options {
	return options{
		concurrency:     DefaultConcurrency,
		maxPollRecords:  DefaultMaxPollRecords,
		attempts:        DefaultAttempts,
		initialBackoff:  DefaultInitialBackoff,
		maxBackoff:      DefaultMaxBackoff,
		shutdownTimeout: DefaultShutdownTimeout,
		commitInterval:  DefaultCommitInterval,
		callTimeout:     DefaultCallTimeout,
		dlAttempts:      DefaultDeadLetterAttempts,
		dlInitial:       DefaultInitialBackoff,
		dlMax:           DefaultMaxBackoff,
	}
}

// WithConfig uses cfg instead of reading the environment.
func WithConfig(cfg Config) Option {
	return func(o *options) { o.cfg = &cfg }
}

// WithGetenv reads the environment through getenv instead of os.Getenv.
func WithGetenv(getenv func(string) string) Option {
	return func(o *options) { o.getenv = getenv }
}

// WithLogger sets the logger. The default writes JSON lines to stderr
// through log/slog.
func WithLogger(l logr.Logger) Option {
	return func(o *options) { o.logger = &l }
}

// WithConcurrency bounds how many partitions are handled at the same time
// (default 16). Records of one partition are always handled one after the
// other, in offset order.
func WithConcurrency(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.concurrency = n
		}
	}
}

// WithMaxPollRecords bounds a batch: how many records, shared equally
// between the partitions that have some, the workers get at once (default
// 1000). A batch ends when every partition finished its share, so smaller
// batches keep a slow partition from holding up the others for long.
// Everything kgo has buffered is taken at each poll, so that the next fetch
// runs while batches are handled; rebalances and shutdown cut a batch short
// at the next record either way.
func WithMaxPollRecords(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxPollRecords = n
		}
	}
}

// WithRetry sets how often a failing record is tried (attempts, at least
// 1, default 5) and the backoff between tries: initial doubles after every
// failure up to maxBackoff (defaults 100ms and 10s).
func WithRetry(attempts int, initial, maxBackoff time.Duration) Option {
	return func(o *options) {
		if attempts > 0 {
			o.attempts = attempts
		}
		if initial >= 0 {
			o.initialBackoff = initial
		}
		if maxBackoff >= initial {
			o.maxBackoff = maxBackoff
		}
	}
}

// WithCallTimeout bounds one call of the handler function (default 30s).
// The call's context carries the deadline; a call that fails after it
// passed counts as a failed attempt (retried, then dead-lettered), so that
// one stuck call cannot hold up a rebalance or a shutdown past the
// deadline. Keep it below the group's rebalance timeout (60s unless
// WithClientOptions sets kgo.RebalanceTimeout). A function that ignores its
// context cannot be stopped; the shutdown timeout still bounds Run.
func WithCallTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.callTimeout = d
		}
	}
}

// WithDeadLetterRetry sets how often a record is tried on the dead-letter
// topic (attempts, at least 1, default 5) and the backoff between tries
// (defaults 100ms doubling up to 10s). When every attempt fails, the
// record's partition stops at it, as without a dead-letter topic: it is
// reported in Stats, /healthz, the lagscale_handler_partitions_stalled
// gauge and the log, while the other partitions carry on.
func WithDeadLetterRetry(attempts int, initial, maxBackoff time.Duration) Option {
	return func(o *options) {
		if attempts > 0 {
			o.dlAttempts = attempts
		}
		if initial >= 0 {
			o.dlInitial = initial
		}
		if maxBackoff >= initial {
			o.dlMax = maxBackoff
		}
	}
}

// WithShutdownTimeout bounds how long in-flight records may take to finish
// after the context is cancelled (default 25s, inside Kubernetes' default
// 30s grace period). When it expires the handler's context is cancelled and
// unfinished records are left uncommitted for the next owner.
func WithShutdownTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.shutdownTimeout = d
		}
	}
}

// WithCommitInterval sets how often handled offsets are committed (default
// 1s): during a long batch, between batches, and once the topic goes quiet.
// Offsets are also committed at once before a rebalance and before leaving.
func WithCommitInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.commitInterval = d
		}
	}
}

// WithHTTPAddr sets the listen address of /healthz, /readyz and /metrics,
// overriding LAGSCALE_HTTP_ADDR. An empty address disables the server.
func WithHTTPAddr(addr string) Option {
	return func(o *options) { o.httpAddr = &addr }
}

// WithRegistry registers the handler's metrics with reg and serves
// /metrics from it, instead of a private registry.
func WithRegistry(reg *prometheus.Registry) Option {
	return func(o *options) { o.registerer, o.gatherer = reg, reg }
}

// WithClientOptions appends franz-go options to the ones built from the
// configuration, for example to tune fetch sizes. Options that change the
// group protocol or committing break the guarantees of this package.
func WithClientOptions(opts ...kgo.Opt) Option {
	return func(o *options) { o.clientOpts = append(o.clientOpts, opts...) }
}
