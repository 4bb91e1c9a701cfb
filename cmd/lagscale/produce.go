package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/lagscale/lagscale/internal/produce"
)

const produceUsage = `Usage: lagscale produce --topic T (--count N | --duration D) [flags]

Writes records to a Kafka topic at a paced rate and prints the achieved rate
every second and a summary at the end.

Profiles (--profile) shape the base --rate over time:
  constant (steady)  rate x factor (1)
  step               rate, then rate x factor (3) for the second half of the segment
  ramp               0 rising to rate x factor (1) over the segment
  sine               rate +/- rate x factor (0.5), one period per segment
  spikes             rate, with 1s at rate x factor (10) every 10s
  burst              rate x factor (5)
  idle               nothing
A profile is a comma-separated sequence of shape[:duration][@factor], e.g.
  steady:60s,burst:120s@5x,idle:30s
Only the last segment may omit its duration; a sequence where every segment
has one repeats until the run ends.

Flags:
`

// runProduce implements `lagscale produce`.
func runProduce(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var (
		brokers     = fs.String("brokers", produceEnvOr("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"), "comma-separated bootstrap servers (default from KAFKA_BOOTSTRAP_SERVERS)")
		topic       = fs.String("topic", "", "topic to write to")
		rate        = fs.Float64("rate", 100, "base rate in records per second")
		duration    = fs.Duration("duration", 0, "stop after this long (e.g. 5m)")
		count       = fs.Int64("count", 0, "stop after this many records")
		profile     = fs.String("profile", "constant", "rate profile, see above")
		size        = fs.Int("size", 100, "value size in bytes")
		keys        = fs.String("keys", "0", "number of distinct keys, \"random\" for a random key per record, 0 for no key")
		createTopic = fs.Bool("create-topic", false, "create the topic if it is missing")
		partitions  = fs.Int("partitions", 12, "partitions for --create-topic")
	)
	fs.Usage = func() {
		fmt.Fprint(stdout, produceUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	prof, err := produce.ParseProfile(*profile)
	if err != nil {
		return fmt.Errorf("--profile: %w", err)
	}
	nkeys := produce.KeysRandom
	if *keys != "random" {
		if nkeys, err = strconv.Atoi(*keys); err != nil || nkeys < 0 {
			return fmt.Errorf("--keys=%q: expected a non-negative number or random", *keys)
		}
	}
	cfg := produce.Config{
		Brokers: produceSplitList(*brokers), Topic: *topic, Rate: *rate, Profile: prof,
		Duration: *duration, Count: *count, Size: *size, Keys: nkeys,
		CreateTopic: *createTopic, Partitions: int32(*partitions),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	_, err = produce.Run(ctx, cfg, stdout)
	return err
}

func produceEnvOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func produceSplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
