'use strict'
// Prometheus series of the handler, named as pkg/handler names them so that
// one dashboard serves Go and Node.js handlers alike.

const client = require('prom-client')

// Buckets of lagscale_handler_handling_seconds: 0.5 ms doubling 16 times,
// as in pkg/handler.
const LATENCY_BUCKETS = client.exponentialBuckets(0.0005, 2, 16)

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
    latency: new client.Histogram({ name: 'lagscale_handler_handling_seconds', help: 'Time one call of the handler function took.', buckets: LATENCY_BUCKETS, registers }),
    inFlight: new client.Gauge({ name: 'lagscale_handler_in_flight_records', help: 'Records being handled right now: one per partition being worked on, as a partition\'s records are handled one at a time.', registers }),
    owned: new client.Gauge({ name: 'lagscale_handler_partitions_owned', help: 'Partitions assigned to this member.', registers }),
    stalled: new client.Gauge({ name: 'lagscale_handler_partitions_stalled', help: 'Owned partitions stopped at a record that failed every attempt with no dead-letter topic configured.', registers })
  }
  if (privateRegistry) client.collectDefaultMetrics({ register: registry })
  return m
}

module.exports = { newMetrics, LATENCY_BUCKETS, client }
