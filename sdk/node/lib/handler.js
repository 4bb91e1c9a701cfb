'use strict'
// The consumer loop. It mirrors pkg/handler (Go):
//
//   - Records of one partition are handled one after the other, in offset
//     order; partitions run concurrently up to `concurrency`.
//   - An offset is committed only when its record and every record before
//     it on the partition were handled or dead-lettered ("done").
//   - Rebalances are served only between batches: librdkafka calls the
//     rebalance callback while the loop polls, and the loop applies the
//     queued events before it handles the records it got, so a partition is
//     never handled after it was given up. A revoke that arrives while a
//     batch runs stops that partition's worker at its next record; the
//     partition's done offset is committed before it is unassigned.
//   - SIGTERM (or stop()) stops fetching, lets in-flight records finish
//     within shutdownTimeoutMs, commits, leaves the group. A second signal
//     exits the process at once with code 2.
//
// The parts live in files named as pkg/handler's: partition.js (partition
// state and a batch's shares), batch.js (the workers), commit.js, options.js,
// rebalance.js, retry.js (retries and the dead-letter topic) and http.js
// (health and metrics). Their Handler methods are mixed into Handler below.

const Kafka = require('@confluentinc/kafka-javascript')
const pino = require('pino')
const { configFromEnv, validate, clientConfig, parseAddr, requireFeatures, DEFAULT_HTTP_ADDR } = require('./config')
const { newMetrics, client: prom } = require('./metrics')
const partition = require('./partition')
const batch = require('./batch')
const commit = require('./commit')
const http = require('./http')
const rebalance = require('./rebalance')
const retry = require('./retry')
const { DEFAULTS, positive } = require('./options')

const { Headers } = retry
const { QUEUE_CAP } = partition

/** Exit code after a second SIGTERM or SIGINT: unfinished records stay uncommitted. */
const EXIT_FORCED = 2

// How long one poll waits for a first record. It bounds how late a commit
// due on a quiet topic and a shutdown are noticed.
const POLL_TIMEOUT_MS = 100

// How often the loop polls while it has records queued.
const POLL_EVERY_MS = 20

/** Handler consumes the configured topics and calls fn for every record; see run(). */
class Handler {
  constructor (fn, options = {}) {
    if (typeof fn !== 'function') throw new TypeError('@lagscale/handler: run(fn): fn must be a function')
    this.fn = fn
    const o = options
    this.cfg = o.config ? validate({ ...o.config }) : configFromEnv(o.env || process.env)
    if (o.httpAddr !== undefined) {
      if (o.httpAddr) parseAddr(o.httpAddr)
      this.cfg.httpAddr = o.httpAddr
    }
    requireFeatures(this.cfg, Kafka.features)
    this.concurrency = Math.max(1, positive('concurrency', o.concurrency, DEFAULTS.concurrency))
    this.maxPollRecords = Math.max(1, positive('maxPollRecords', o.maxPollRecords, DEFAULTS.maxPollRecords))
    this.attempts = Math.max(1, positive('attempts', o.attempts, DEFAULTS.attempts))
    this.initialBackoffMs = positive('initialBackoffMs', o.initialBackoffMs, DEFAULTS.initialBackoffMs)
    this.maxBackoffMs = Math.max(this.initialBackoffMs, positive('maxBackoffMs', o.maxBackoffMs, DEFAULTS.maxBackoffMs))
    this.shutdownTimeoutMs = positive('shutdownTimeoutMs', o.shutdownTimeoutMs, DEFAULTS.shutdownTimeoutMs)
    this.commitIntervalMs = Math.max(1, positive('commitIntervalMs', o.commitIntervalMs, DEFAULTS.commitIntervalMs))
    // kafkaConfig holds librdkafka properties for the consumer, and under
    // `producer` those of the dead-letter producer.
    const { producer: producerConfig = {}, ...consumerConfig } = o.kafkaConfig || {}
    this.consumerConfig = consumerConfig
    this.producerConfig = producerConfig
    this.handleSignals = o.signals !== false
    this.externalSignal = o.signal

    const base = { group: this.cfg.group }
    if (this.cfg.consumer) base.eventConsumer = this.cfg.consumer
    this.log = (o.logger || pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }))).child(base)
    this.registry = o.registry || new prom.Registry()
    this.m = newMetrics(this.registry, !o.registry)
    this.handledByTopic = new Map(this.cfg.topics.map(t => [t, this.m.handled.labels(t)]))

    this.counts = { handled: 0, failed: 0, deadLettered: 0, retries: 0 }
    this.ready = false
    this.stopping = false
    this.forced = false // the shutdown timeout expired
    this.closing = false // the loop ended; rebalances are served at once
    this.parts = new Map() // key -> partition state, for owned partitions
    this.queued = 0 // records queued in every partition, not settled yet
    this.events = [] // rebalance events waiting for the loop
    this.abort = new AbortController() // what handler functions see
    this.wakeForced = null // ends the wait for the running batch's workers
    this.started = false
  }

  /** stats returns the counters so far and the partitions stalled right now. */
  stats () {
    const stalled = []
    for (const st of this.parts.values()) {
      if (st.stalled) stalled.push({ topic: st.topic, partition: st.partition, offset: st.stalled.offset, error: st.stalled.error })
    }
    return { ...this.counts, stalled }
  }

  /** stop starts a graceful shutdown, as the first SIGTERM does. */
  stop () {
    if (this.stopping) return
    this.stopping = true
    this.ready = false
    this.log.info({ timeoutMs: this.shutdownTimeoutMs }, 'Shutting down: finishing in-flight records')
    this.forceTimer = setTimeout(() => {
      this.forced = true
      this.log.info('Shutdown timeout expired: abandoning unfinished records, they stay uncommitted')
      this.abort.abort(new Error('shutdown timeout expired'))
      if (this.wakeForced) this.wakeForced()
    }, this.shutdownTimeoutMs)
  }

  async run () {
    if (this.started) throw new Error('@lagscale/handler: run called twice')
    this.started = true
    let onSignal
    if (this.handleSignals) {
      let signals = 0
      onSignal = sig => {
        if (++signals > 1) {
          process.stderr.write('@lagscale/handler: second signal, exiting without committing unfinished work\n')
          process.exit(EXIT_FORCED)
        }
        this.log.info({ signal: sig }, 'Signal received')
        this.stop()
      }
      process.on('SIGTERM', onSignal)
      process.on('SIGINT', onSignal)
    }
    const onAbort = () => this.stop()
    if (this.externalSignal) {
      if (this.externalSignal.aborted) this.stop()
      else this.externalSignal.addEventListener('abort', onAbort, { once: true })
    }
    let server
    try {
      server = await this.serveHTTP()
      await this.connect()
      await this.loop()
      await this.shutdown()
    } finally {
      clearTimeout(this.forceTimer)
      if (server) await new Promise(resolve => { server.close(resolve); server.closeAllConnections() })
      if (onSignal) {
        process.removeListener('SIGTERM', onSignal)
        process.removeListener('SIGINT', onSignal)
      }
      if (this.externalSignal) this.externalSignal.removeEventListener('abort', onAbort)
    }
    const s = { ...this.stats(), stalled: this.finalStalled || [] }
    this.log.info({ handled: s.handled, failed: s.failed, deadLettered: s.deadLettered, stalledPartitions: s.stalled.length }, 'Stopped')
    return s
  }

  async connect () {
    const cfg = this.cfg
    const conf = {
      ...clientConfig(cfg),
      'group.id': cfg.group,
      'group.protocol': cfg.groupType,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': cfg.isolationLevel,
      'enable.partition.eof': false,
      rebalance_cb: (err, assignment) => this.onRebalance(err, assignment),
      offset_commit_cb: (err, offsets) => this.onCommitted(err, offsets),
      ...this.consumerConfig
    }
    // Classic groups use librdkafka's eager default (range, roundrobin), not
    // cooperative-sticky: against kfake, a cooperative group that grew from
    // 3 to 5 members sometimes never ran the second round that hands the new
    // members their partitions (3 of 5 assigned after 3 minutes, in 2 of
    // about 6 CI runs of the churn test). Against Apache Kafka 4.4.0 the
    // same churn with cooperative-sticky passed (test/kafka TestNodeSDK),
    // so the stall looks like kfake's; eager works on both. Pass
    // partition.assignment.strategy in consumerConfig to choose another.
    const consumer = new Kafka.KafkaConsumer(conf, { 'auto.offset.reset': cfg.autoOffsetReset })
    this.consumer = consumer
    consumer.on('event.error', err => this.log.error({ err: err.message, code: err.code }, 'Kafka client error'))
    await new Promise((resolve, reject) => consumer.connect({ timeout: 30000 }, err => err ? reject(new Error(`@lagscale/handler: connecting to ${cfg.brokers.join(',')}: ${err.message}`)) : resolve()))
    consumer.setDefaultIsTimeoutOnlyForFirstMessage(true)
    consumer.subscribe(cfg.topics)
    if (cfg.deadLetterTopic) {
      const k = new Kafka.KafkaJS.Kafka({})
      this.producer = k.producer({ ...clientConfig(cfg), 'enable.idempotence': true, 'linger.ms': 0, log_level: 3, ...this.producerConfig })
      await this.producer.connect()
    }
    this.log.info({ topics: cfg.topics, brokers: cfg.brokers, groupType: cfg.groupType, isolationLevel: cfg.isolationLevel, deadLetterTopic: cfg.deadLetterTopic }, 'Consuming')
  }

  poll (n, timeoutMs) {
    this.consumer.setDefaultConsumeTimeout(timeoutMs)
    return new Promise((resolve, reject) => {
      this.consumer.consume(n, (err, msgs) => err ? reject(err) : resolve(msgs))
    })
  }

  // The loop polls, queues the records per partition, applies the
  // rebalance events the poll served, then hands a batch to the workers:
  // maxPollRecords records shared evenly between the partitions with
  // queued records (see runBatch), so that one partition's backlog does not
  // hold the others up.
  //
  // The next poll starts as a batch starts: the client's worker thread
  // takes records off librdkafka's queue while the batch runs, and the loop
  // waits for that poll, applies the rebalance events it served and only
  // then starts the next batch. librdkafka keeps fetching in the background
  // too. The queue holds at most QUEUE_CAP records: beyond that the loop
  // still polls between batches, one record at a time, so that rebalances
  // are served.
  async loop () {
    let lastCommit = Date.now()
    let lastPoll = 0
    let ahead = null // the poll started with the batch
    while (!this.stopping) {
      // The poll started with the last batch is waited for first. Without
      // one (the queue was at QUEUE_CAP) the loop polls when the queue ran
      // low, or every POLL_EVERY_MS to serve rebalances.
      if (ahead !== null || this.queued < this.maxPollRecords || Date.now() - lastPoll >= POLL_EVERY_MS) {
        lastPoll = Date.now()
        try {
          if (ahead !== null) this.enqueue(await ahead)
          else this.enqueue(await this.poll(this.queued < QUEUE_CAP ? this.maxPollRecords : 1, this.queued === 0 ? POLL_TIMEOUT_MS : 0))
        } catch (err) {
          this.log.error({ err: err.message, code: err.code }, 'Poll failed')
          await this.sleep(100)
        }
        ahead = null
        this.applyRebalances()
      }
      if (this.queued > 0 && !this.stopping) {
        if (this.queued < QUEUE_CAP) {
          ahead = this.poll(Math.min(this.maxPollRecords, QUEUE_CAP - this.queued), 0)
          // Handled when the loop waits for it; a rejection must not be
          // reported as unhandled before then.
          ahead.catch(() => {})
        }
        await this.runBatch()
      }
      this.applyRebalances()
      if (Date.now() - lastCommit >= this.commitIntervalMs) {
        this.commit(false)
        lastCommit = Date.now()
      }
    }
    // A poll still running when the loop stopped: its records stay
    // uncommitted, and its rebalance events are applied by shutdown.
    if (ahead !== null) await ahead.catch(() => {})
  }

  // enqueue queues polled records on their partitions (partition.enqueue).
  enqueue (msgs) {
    this.queued += partition.enqueue(this.parts, msgs)
  }

  async shutdown () {
    this.ready = false
    this.closing = true
    this.commit(true)
    // Leaving forgets every partition: the stalled ones are kept for the
    // final stats.
    this.finalStalled = this.stats().stalled
    if (this.producer) await this.producer.disconnect().catch(err => this.log.error({ err: err.message }, 'Closing the dead-letter producer failed'))
    // Leaving the group revokes everything: onRebalance commits what is
    // still pending and unassigns at once now that closing is set.
    await new Promise(resolve => this.consumer.disconnect(() => resolve()))
  }
}

// The methods of the parts, one file per concern.
for (const part of [batch, commit, http, rebalance, retry]) Object.assign(Handler.prototype, part.methods)

/**
 * run reads the handler contract from the environment, joins the consumer
 * group and calls fn(message, ctx) for every record until SIGTERM, SIGINT,
 * options.signal or handler.stop(). It resolves with the final stats after
 * a graceful shutdown and rejects when it cannot start (the error names the
 * contract variable at fault).
 */
function run (fn, options) {
  let h
  try {
    h = new Handler(fn, options)
  } catch (err) {
    return Promise.reject(err)
  }
  return h.run()
}

module.exports = { run, Handler, Headers, EXIT_FORCED, DEFAULTS, DEFAULT_HTTP_ADDR }
