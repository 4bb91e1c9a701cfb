'use strict'
// Prometheus series of the handler, named as pkg/handler names them so that
// one dashboard serves Go and Node.js handlers alike.

const client = require('prom-client')

// Buckets of lagscale_handler_handling_seconds: 0.5 ms doubling 16 times,
// as in pkg/handler.
const LATENCY_BUCKETS = client.exponentialBuckets(0.0005, 2, 16)

/**
 * BatchHistogram is lagscale_handler_handling_seconds. prom-client's
 * Histogram costs about as much per observe() as a fast handler call, so
 * the workers time calls in runs (see runPartition) and add whole runs
 * here: add(n, seconds) puts n calls that together took seconds into the
 * first bucket when that is below its bound, and otherwise one call of
 * the whole time (an upper bound) and the others into the first bucket,
 * as pkg/handler's tally does. The sum is always exact. It is registered
 * with the registry as a metric object of prom-client's shape.
 */
class BatchHistogram {
  constructor (name, help, bounds) {
    this.name = name
    this.help = help
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length + 1) // per bucket, not cumulative; the last is +Inf
    this.sum = 0
    this.count = 0
  }

  /** add records n calls that took seconds in all. */
  add (n, seconds) {
    this.sum += seconds
    this.count += n
    if (seconds < this.bounds[0]) {
      this.counts[0] += n
      return
    }
    this.counts[0] += n - 1
    let i = 0
    while (i < this.bounds.length && seconds > this.bounds[i]) i++
    this.counts[i]++
  }

  get () {
    const values = []
    let cum = 0
    for (let i = 0; i < this.bounds.length; i++) {
      cum += this.counts[i]
      values.push({ labels: { le: this.bounds[i] }, value: cum, metricName: this.name + '_bucket' })
    }
    values.push({ labels: { le: '+Inf' }, value: this.count, metricName: this.name + '_bucket' })
    values.push({ labels: {}, value: this.sum, metricName: this.name + '_sum' })
    values.push({ labels: {}, value: this.count, metricName: this.name + '_count' })
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' }
  }

  reset () {
    this.counts.fill(0)
    this.sum = 0
    this.count = 0
  }
}

/**
 * newMetrics registers the handler's series with registry. A private
 * registry (the default) also gets prom-client's process and Node.js
 * runtime metrics.
 */
function newMetrics (registry, privateRegistry) {
  const registers = [registry]
  const m = {
    handled: new client.Counter({ name: 'lagscale_handler_records_handled_total', help: 'Records the handler function returned for without an error.', labelNames: ['topic'], registers }),
    failed: new client.Counter({ name: 'lagscale_handler_records_failed_total', help: 'Records that failed every attempt (then dead-lettered, or their partition stopped).', labelNames: ['topic'], registers }),
    deadLettered: new client.Counter({ name: 'lagscale_handler_records_dead_lettered_total', help: 'Records written to the dead-letter topic.', labelNames: ['topic'], registers }),
    attemptErrors: new client.Counter({ name: 'lagscale_handler_attempt_errors_total', help: 'Calls of the handler function that threw or rejected.', labelNames: ['topic'], registers }),
    commitErrors: new client.Counter({ name: 'lagscale_handler_commit_errors_total', help: 'Offset commits that failed (they are retried with the next commit).', registers }),
    latency: new BatchHistogram('lagscale_handler_handling_seconds', 'Time one call of the handler function took.', LATENCY_BUCKETS),
    inFlight: new client.Gauge({ name: 'lagscale_handler_in_flight_records', help: 'Records being handled right now: one per partition being worked on, as a partition\'s records are handled one at a time.', registers }),
    owned: new client.Gauge({ name: 'lagscale_handler_partitions_owned', help: 'Partitions assigned to this member.', registers }),
    stalled: new client.Gauge({ name: 'lagscale_handler_partitions_stalled', help: 'Owned partitions stopped at a record that failed every attempt with no dead-letter topic configured.', registers })
  }
  registry.registerMetric(m.latency)
  if (privateRegistry) client.collectDefaultMetrics({ register: registry })
  return m
}

module.exports = { newMetrics, BatchHistogram, LATENCY_BUCKETS, client }
