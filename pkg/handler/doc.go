// Package handler is the Go SDK for lagscale handler images.
//
// A handler is a program that lagscale runs as a Deployment and scales from
// its consumer group's lag. Every scale event is a member joining or leaving
// the group, so a handler must commit what it has processed, only that, and
// leave cleanly. This package does that:
//
//	func main() {
//		handler.Main(func(ctx context.Context, r *kgo.Record) error {
//			return process(ctx, r.Value)
//		})
//	}
//
// It reads the environment the operator injects (KAFKA_BOOTSTRAP_SERVERS,
// KAFKA_TOPICS, KAFKA_CONSUMER_GROUP, KAFKA_SECURITY_PROTOCOL, SASL and TLS
// settings, LAGSCALE_DEAD_LETTER_TOPIC; see ConfigFromEnv and the handler
// contract in docs/architecture.md) and joins the group with the
// cooperative-sticky balancer, so a rebalance only moves the partitions that
// change owner. It reads read-committed (records of aborted transactions
// never reach the function; KAFKA_ISOLATION_LEVEL=read_uncommitted opts
// out), and a partition without a committed offset starts as
// KAFKA_AUTO_OFFSET_RESET says, latest by default: at the end of the
// partitions that existed when the handler started and at the start of any
// partition added later.
//
// Records of one partition are handled in offset order; partitions run
// concurrently up to WithConcurrency. An offset is committed only when its
// record and every record before it in the partition were handled. Commits
// go out once per WithCommitInterval while records flow, within one
// interval once they stop, and at once before any rebalance is allowed to
// proceed and before leaving the group.
//
// Each call gets a context with a deadline (WithCallTimeout, default 30s,
// inside the group's rebalance timeout); a call that ends with an error
// after its deadline counts as a failed attempt, so a call stuck on I/O
// that honours its context cannot hold up a rebalance or a shutdown. A record whose function returns an error
// is retried with exponential backoff (WithRetry). After the last attempt
// it is written to the dead-letter topic with the Header* headers, retried
// with backoff up to WithDeadLetterRetry's bound. With no dead-letter topic,
// or when every write to it failed, the partition stops at that record
// (logged, listed on /healthz and in Stats, counted by
// lagscale_handler_partitions_stalled) and is never skipped; the other
// partitions carry on.
//
// On SIGTERM (or when Run's context is cancelled) the handler stops
// fetching, lets in-flight records finish within WithShutdownTimeout,
// commits, leaves the group and exits 0. A second signal exits at once.
//
// An HTTP server (LAGSCALE_HTTP_ADDR or WithHTTPAddr, default :8080) serves
// /healthz, /readyz (ready once the member has joined the group, not ready
// while shutting down) and /metrics from a private Prometheus registry.
package handler
