package produce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KeysRandom asks for a random key per record.
const KeysRandom = -1

// Config is one load-generation run.
type Config struct {
	// Brokers are the bootstrap servers.
	Brokers []string
	// Topic receives the records.
	Topic string
	// Rate is the base rate in records/s that the profile scales.
	Rate float64
	// Profile shapes the rate over time; see ParseProfile.
	Profile Profile
	// Duration stops the run after this long; 0 means no limit.
	Duration time.Duration
	// Count stops the run after this many records; 0 means no limit. At
	// least one of Duration and Count must be set.
	Count int64
	// Size is the value size in bytes.
	Size int
	// Keys is the number of distinct keys (key-0 ... key-N-1, in turn),
	// KeysRandom for a random key per record, or 0 for no key (records
	// are spread over partitions by the sticky partitioner).
	Keys int
	// CreateTopic creates the topic with Partitions partitions if it is
	// missing.
	CreateTopic bool
	// Partitions is the partition count for CreateTopic.
	Partitions int32
	// ReportEvery is how often progress is printed; 0 means every second.
	ReportEvery time.Duration
	// ClientOptions are extra franz-go options (TLS, SASL).
	ClientOptions []kgo.Opt
}

// Result summarizes a run.
type Result struct {
	// Sent counts records handed to the client.
	Sent int64
	// Acked counts records the broker acknowledged.
	Acked int64
	// Failed counts records the broker rejected.
	Failed int64
	// Elapsed is the wall-clock length of the run.
	Elapsed time.Duration
}

// Rate is the achieved rate of acknowledged records per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Acked) / r.Elapsed.Seconds()
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("no brokers: set --brokers")
	case c.Topic == "":
		return errors.New("no topic: set --topic")
	case c.Rate <= 0:
		return errors.New("rate must be positive")
	case c.Duration <= 0 && c.Count <= 0:
		return errors.New("set --duration or --count, or the run never ends")
	case c.Size < 0:
		return errors.New("size must not be negative")
	case c.Keys < KeysRandom:
		return errors.New("keys must be a count or random")
	case c.CreateTopic && c.Partitions <= 0:
		return errors.New("--create-topic needs --partitions greater than 0")
	}
	return nil
}

// Run produces records until the count or duration is reached or ctx is
// cancelled, printing the achieved rate every ReportEvery and a summary
// at the end to out.
func Run(ctx context.Context, cfg Config, out io.Writer) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if len(cfg.Profile.Segments) == 0 {
		cfg.Profile = Profile{Segments: []Segment{{Shape: ShapeConstant, Factor: 1}}}
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ProducerLinger(5 * time.Millisecond),
	}, cfg.ClientOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return Result{}, fmt.Errorf("creating Kafka client: %w", err)
	}
	defer cl.Close()
	if err := checkTopic(ctx, cl, cfg); err != nil {
		return Result{}, err
	}

	var acked, failed atomic.Int64
	var (
		errMu    sync.Mutex
		firstErr error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			errMu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			errMu.Unlock()
			return
		}
		acked.Add(1)
	}
	value := make([]byte, cfg.Size)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	every := cfg.ReportEvery
	if every <= 0 {
		every = time.Second
	}

	pacer := NewPacer(cfg.Profile, cfg.Rate)
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	nextReport := every
	var sent, lastAcked int64
	lastReport := time.Duration(0)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		now := time.Since(start)
		if cfg.Duration > 0 && now >= cfg.Duration {
			now = cfg.Duration
		}
		due := pacer.Advance(now)
		if cfg.Count > 0 {
			due = min(due, cfg.Count-sent)
		}
		for range due {
			r := &kgo.Record{Value: record(value, sent)}
			switch {
			case cfg.Keys > 0:
				r.Key = []byte("key-" + strconv.FormatInt(sent%int64(cfg.Keys), 10))
			case cfg.Keys == KeysRandom:
				r.Key = strconv.AppendUint(nil, rand.Uint64(), 36)
			}
			cl.Produce(ctx, r, promise)
			sent++
		}
		if now >= nextReport {
			a := acked.Load()
			fmt.Fprintf(out, "t=%s target=%.0f/s achieved=%.0f/s sent=%d acked=%d failed=%d\n",
				now.Truncate(time.Second), cfg.Profile.Rate(cfg.Rate, now), float64(a-lastAcked)/(now-lastReport).Seconds(), sent, a, failed.Load())
			lastAcked, lastReport = a, now
			nextReport += every
		}
		if (cfg.Count > 0 && sent >= cfg.Count) || (cfg.Duration > 0 && now >= cfg.Duration) {
			break
		}
	}
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := cl.Flush(flushCtx); err != nil {
		return Result{}, fmt.Errorf("flushing: %w", err)
	}
	res := Result{Sent: sent, Acked: acked.Load(), Failed: failed.Load(), Elapsed: time.Since(start)}
	fmt.Fprintf(out, "done: sent=%d acked=%d failed=%d elapsed=%s achieved=%.1f/s\n",
		res.Sent, res.Acked, res.Failed, res.Elapsed.Round(time.Millisecond), res.Rate())
	errMu.Lock()
	defer errMu.Unlock()
	if firstErr != nil {
		return res, fmt.Errorf("%d records failed, first error: %w", res.Failed, firstErr)
	}
	return res, nil
}

// record returns the value of record seq: its sequence number, then
// filler up to the configured size.
func record(filler []byte, seq int64) []byte {
	v := append([]byte(nil), filler...)
	n := strconv.AppendInt(nil, seq, 10)
	if len(n) > len(v) {
		return n
	}
	copy(v, n)
	if len(n) < len(v) {
		v[len(n)] = ' '
	}
	return v
}

// checkTimeout bounds the first request, so that a wrong address fails in
// seconds instead of once per record.
const checkTimeout = 10 * time.Second

// checkTopic asks the brokers about the topic before anything is produced,
// creating it with --create-topic, so that a wrong address or a missing
// topic is one error that says what to do rather than a failure per record.
func checkTopic(ctx context.Context, cl *kgo.Client, cfg Config) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	brokers := strings.Join(cfg.Brokers, ",")
	topics, err := kadm.NewClient(cl).ListTopics(ctx, cfg.Topic)
	if err != nil {
		return fmt.Errorf("cannot reach Kafka at %s (%w): check --brokers or KAFKA_BOOTSTRAP_SERVERS; `lagscale sandbox up` prints the sandbox's Kafka address", brokers, err)
	}
	if topics.Has(cfg.Topic) && topics[cfg.Topic].Err == nil {
		return nil
	}
	if !cfg.CreateTopic {
		return fmt.Errorf("topic %q does not exist on %s: rerun with --create-topic (and --partitions N, default 12), or create it first", cfg.Topic, brokers)
	}
	return createTopic(ctx, cl, cfg.Topic, cfg.Partitions)
}

func createTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32) error {
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	return nil
}
