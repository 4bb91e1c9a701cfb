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

const http = require('node:http')
const { once } = require('node:events')
const Kafka = require('@confluentinc/kafka-javascript')
const pino = require('pino')
const { configFromEnv, validate, clientConfig, parseAddr, requireFeatures, Env, DEFAULT_HTTP_ADDR } = require('./config')
const { newMetrics, client: prom } = require('./metrics')

/** Headers added to a record written to the dead-letter topic, as in pkg/handler. */
const Headers = Object.freeze({
  originalTopic: 'lagscale.original.topic',
  originalPartition: 'lagscale.original.partition',
  originalOffset: 'lagscale.original.offset',
  attempts: 'lagscale.attempts',
  error: 'lagscale.error'
})

/** Exit code after a second SIGTERM or SIGINT: unfinished records stay uncommitted. */
const EXIT_FORCED = 2

const DEFAULTS = Object.freeze({
  concurrency: 16,
  maxPollRecords: 1000,
  attempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 10000,
  shutdownTimeoutMs: 25000,
  commitIntervalMs: 1000
})

const ERR_ASSIGN = Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS
const ERR_REVOKE = Kafka.CODES.ERRORS.ERR__REVOKE_PARTITIONS

// How long one poll waits for a first record. It bounds how late a commit
// due on a quiet topic and a shutdown are noticed.
const POLL_TIMEOUT_MS = 100

// How often the loop polls while it has records queued.
const POLL_EVERY_MS = 20

// At most this many calls are timed with one clock read.
const MAX_RUN = 16

// At most this many records wait in the partitions' queues.
const QUEUE_CAP = 10000

const key = (topic, partition) => topic + '\u0000' + partition

function positive (name, v, def) {
  if (v === undefined) return def
  if (!Number.isInteger(v) || v < 0) throw new TypeError(`options.${name}=${JSON.stringify(v)}: expected a non-negative integer`)
  return v
}

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

  async serveHTTP () {
    if (!this.cfg.httpAddr) return null
    const { host, port } = parseAddr(this.cfg.httpAddr)
    const server = http.createServer((req, res) => {
      const path = (req.url || '').split('?')[0]
      if (path === '/healthz') {
        res.end('ok\n')
      } else if (path === '/readyz') {
        if (this.ready) res.end('ok\n')
        else { res.statusCode = 503; res.end('not ready: not in the consumer group\n') }
      } else if (path === '/metrics') {
        this.registry.metrics().then(body => {
          res.setHeader('Content-Type', this.registry.contentType)
          res.end(body)
        }, err => { res.statusCode = 500; res.end(String(err)) })
      } else {
        res.statusCode = 404
        res.end('not found\n')
      }
    })
    server.listen(port, host)
    try {
      await once(server, 'listening')
    } catch (err) {
      throw new Error(`@lagscale/handler: listening for health and metrics (${Env.httpAddr}=${this.cfg.httpAddr}): ${err.message}`, { cause: err })
    }
    this.httpAddress = server.address()
    this.log.info({ addr: `${this.httpAddress.address}:${this.httpAddress.port}` }, 'Serving health and metrics')
    return server
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

  // enqueue appends records to their partition's queue, in offset order.
  // Records of partitions not owned (revoked before the poll returned) or
  // stalled are dropped: they stay uncommitted.
  enqueue (msgs) {
    let st = null
    for (let i = 0; i < msgs.length; i++) {
      const r = msgs[i]
      if (st === null || st.topic !== r.topic || st.partition !== r.partition) st = this.parts.get(key(r.topic, r.partition)) || null
      if (st === null) {
        st = { topic: r.topic, partition: r.partition, dropped: true }
        continue
      }
      if (st.dropped || st.stalled) continue
      st.queue.push(r)
      this.queued++
    }
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

  // onRebalance is librdkafka's rebalance callback. While the loop runs the
  // event waits for it (the loop polls again only after applying it); a
  // revoke also stops the revoked partitions' workers at their next record.
  onRebalance (err, assignment) {
    if (!err || (err.code !== ERR_ASSIGN && err.code !== ERR_REVOKE)) {
      this.log.error({ err: err && err.message }, 'Rebalance failed')
      return
    }
    const ev = { assign: err.code === ERR_ASSIGN, assignment, lost: !!(err.code === ERR_REVOKE && this.consumer.assignmentLost()) }
    if (!ev.assign) {
      for (const tp of assignment) {
        const st = this.parts.get(key(tp.topic, tp.partition))
        if (st) st.revoking = true
      }
    }
    this.events.push(ev)
    if (this.closing) this.applyRebalances()
  }

  applyRebalances () {
    while (this.events.length > 0) {
      const ev = this.events.shift()
      const tps = ev.assignment.map(tp => ({ topic: tp.topic, partition: tp.partition }))
      try {
        if (ev.assign) {
          for (const tp of tps) {
            this.parts.set(key(tp.topic, tp.partition), { topic: tp.topic, partition: tp.partition, done: -1, committed: -1, stalled: null, revoking: false, queue: [], head: 0, runMax: 1 })
          }
          this.assign(tps)
          this.ready = !this.stopping
          if (tps.length > 0) this.log.info({ partitions: tps }, 'Partitions assigned')
        } else {
          if (!ev.lost) this.commit(true, tps)
          this.forget(tps)
          this.unassign(tps)
          if (tps.length > 0) this.log.info({ partitions: tps }, ev.lost ? 'Partitions lost' : 'Partitions revoked')
        }
      } catch (e) {
        // While leaving, the client refuses calls once it is disconnecting;
        // everything was committed before it started.
        if (!this.closing) this.log.error({ err: e.message }, 'Applying a rebalance failed')
      }
      this.m.owned.set(this.parts.size)
    }
  }

  assign (tps) {
    if (this.consumer.rebalanceProtocol() === 'EAGER') this.consumer.assign(tps)
    else this.consumer.incrementalAssign(tps)
  }

  unassign (tps) {
    if (this.consumer.rebalanceProtocol() === 'EAGER') this.consumer.unassign()
    else this.consumer.incrementalUnassign(tps)
  }

  forget (tps) {
    const resume = []
    for (const tp of tps) {
      const k = key(tp.topic, tp.partition)
      const st = this.parts.get(k)
      if (!st) continue
      if (st.stalled) resume.push(tp)
      this.queued -= st.queue.length - st.head
      this.parts.delete(k)
    }
    // Resumed so that the partition fetches again if it comes back.
    if (resume.length > 0) {
      try { this.consumer.resume(resume) } catch (e) { this.log.error({ err: e.message }, 'Resuming a stalled partition failed') }
    }
    this.m.stalled.set(this.countStalled())
  }

  countStalled () {
    let n = 0
    for (const st of this.parts.values()) if (st.stalled) n++
    return n
  }

  // commit commits the done offset of every owned partition (or of only)
  // that moved since its last commit; sync waits for the broker.
  commit (sync, only) {
    const offsets = []
    const sts = only ? only.map(tp => this.parts.get(key(tp.topic, tp.partition))).filter(Boolean) : this.parts.values()
    for (const st of sts) {
      if (st.done > st.committed) offsets.push({ topic: st.topic, partition: st.partition, offset: st.done })
    }
    if (offsets.length === 0) return
    try {
      if (sync) this.consumer.commitSync(offsets)
      else this.consumer.commit(offsets)
      for (const o of offsets) {
        const st = this.parts.get(key(o.topic, o.partition))
        if (st) st.committed = Math.max(st.committed, o.offset)
      }
    } catch (err) {
      this.m.commitErrors.inc()
      this.log.error({ err: err.message }, 'Committing offsets failed')
    }
  }

  // onCommitted reports asynchronous commits: a failed one is counted and
  // its partitions committed again with the next commit.
  onCommitted (err, offsets) {
    if (!err) return
    this.m.commitErrors.inc()
    this.log.error({ err: err.message }, 'Committing offsets failed')
    for (const o of offsets || []) {
      const st = this.parts.get(key(o.topic, o.partition))
      if (st && st.committed <= o.offset) st.committed = -1
    }
  }

  // runBatch runs workers over up to maxPollRecords queued records, shared
  // out evenly between the partitions that have some: a partition with
  // fewer than its share hands what it does not use to the others. (With
  // a fixed share of maxPollRecords / partitions, a batch handled fewer
  // records than a poll brings whenever the partitions' queues were
  // uneven, and the queues grew to QUEUE_CAP: records kept that long
  // outlive the young generation, and garbage collection became the SDK's
  // largest cost.)
  async runBatch () {
    const live = []
    for (const st of this.parts.values()) if (st.queue.length > st.head && !st.stalled) live.push(st)
    if (live.length === 0) return
    if (live.length > 1) live.sort((a, b) => (a.queue.length - a.head) - (b.queue.length - b.head))
    const ends = new Array(live.length)
    let budget = this.maxPollRecords
    for (let i = 0; i < live.length; i++) {
      const st = live[i]
      const n = Math.min(st.queue.length - st.head, Math.max(1, Math.floor(budget / (live.length - i))))
      ends[i] = st.head + n
      budget -= n
    }
    let next = 0
    const worker = async () => {
      while (next < live.length && !this.stopping) {
        const i = next++
        const st = live[i]
        await this.runPartition(st, ends[i])
        this.trim(st)
      }
    }
    const workers = []
    for (let i = 0; i < Math.min(this.concurrency, live.length); i++) workers.push(worker())
    // After the shutdown timeout, records still in the handler function
    // are abandoned: they are never marked done. (Not Promise.race with
    // one long-lived promise: every race would add a reaction to it that
    // is never released.)
    const all = Promise.all(workers)
    if (this.forced) return
    await new Promise((resolve, reject) => {
      this.wakeForced = resolve
      all.then(resolve, reject)
    })
    this.wakeForced = null
  }

  // trim drops the settled records at the head of a partition's queue, and
  // the whole queue of a stalled partition.
  trim (st) {
    if (st.stalled) {
      this.queued -= st.queue.length - st.head
      st.queue = []
      st.head = 0
      return
    }
    if (st.head === st.queue.length) {
      st.queue = []
      st.head = 0
    } else if (st.head > 4096) {
      st.queue = st.queue.slice(st.head)
      st.head = 0
    }
  }

  // runPartition handles a partition's queued records up to end, in
  // order, moving st.head past each record it settles.
  //
  // Calls are timed in runs: one clock read closes a run of up to
  // MAX_RUN calls while calls stay fast, and every call is timed alone
  // once one is slow (see BatchHistogram). Reading the clock and updating
  // shared metrics per record would cost more than a fast handler call.
  async runPartition (st, end) {
    const fn = this.fn
    const recs = st.queue
    const latency = this.m.latency
    const fast = latency.bounds[0]
    const ctx = { topic: st.topic, partition: st.partition, attempt: 1, signal: this.abort.signal, log: this.log }
    const start = st.head
    let handled = 0
    let i = start
    let runStart = performance.now()
    let runLen = 0
    let runMax = st.runMax
    const closeRun = () => {
      const now = performance.now()
      const el = (now - runStart) / 1000
      latency.add(runLen, el)
      runMax = el < fast / 2 ? Math.min(2 * runMax, MAX_RUN) : 1
      runLen = 0
      runStart = now
    }
    this.m.inFlight.inc()
    try {
      for (; i < end; i++) {
        if (this.stopping || st.revoking) break
        const r = recs[i]
        ctx.attempt = 1
        let err = null
        try {
          const p = fn(r, ctx)
          if (p !== undefined && p !== null && typeof p.then === 'function') await p
        } catch (e) {
          err = e === undefined || e === null ? new Error(String(e)) : e
        }
        if (++runLen >= runMax || err !== null) closeRun()
        if (this.forced) return
        if (err === null) {
          handled++
          st.done = r.offset + 1
          continue
        }
        const outcome = await this.retry(st, r, ctx, err)
        runStart = performance.now()
        if (outcome !== 'done') break // stalled or interrupted: later records wait
        st.done = r.offset + 1
      }
    } finally {
      if (runLen > 0) closeRun()
      st.runMax = runMax
      if (!this.forced) {
        this.queued -= i - start
        st.head = i
        // Settled records are released at once: the queue keeps its
        // array until it drains or its head passes 4096 (see trim), and
        // records kept that long outlive the young generation, which made
        // garbage collection the SDK's largest cost.
        for (let j = start; j < i; j++) recs[j] = undefined
      }
      this.m.inFlight.dec()
      if (handled > 0) {
        this.counts.handled += handled
        const c = this.handledByTopic.get(st.topic)
        if (c) c.inc(handled)
        else this.m.handled.labels(st.topic).inc(handled)
      }
    }
  }

  // retry tries a failed record again with backoff, then dead-letters it
  // or stalls its partition. It returns 'done', 'stalled' or 'interrupted'.
  async retry (st, r, ctx, firstErr) {
    let err = firstErr
    let backoff = this.initialBackoffMs
    this.m.attemptErrors.labels(st.topic).inc()
    let attempt = 1
    while (attempt < this.attempts) {
      this.counts.retries++
      this.log.debug({ topic: st.topic, partition: st.partition, offset: r.offset, attempt, backoffMs: backoff, err: errorText(err) }, 'Record failed, retrying')
      if (!await this.sleep(backoff, st)) return 'interrupted'
      attempt++
      ctx.attempt = attempt
      const t0 = performance.now()
      try {
        await this.fn(r, ctx)
        err = null
      } catch (e) {
        err = e === undefined || e === null ? new Error(String(e)) : e
      }
      this.m.latency.add(1, (performance.now() - t0) / 1000)
      if (this.forced) return 'interrupted'
      if (err === null) {
        this.counts.handled++
        const c = this.handledByTopic.get(st.topic)
        if (c) c.inc()
        return 'done'
      }
      this.m.attemptErrors.labels(st.topic).inc()
      backoff = Math.min(2 * backoff, this.maxBackoffMs)
    }
    this.counts.failed++
    this.m.failed.labels(st.topic).inc()
    if (!this.cfg.deadLetterTopic) {
      this.stall(st, r, attempt, err)
      return 'stalled'
    }
    const headers = [...(r.headers || []).map(h => {
      const k = Object.keys(h)[0]
      return { [k]: h[k] }
    })]
    const extra = {
      [Headers.originalTopic]: st.topic,
      [Headers.originalPartition]: String(st.partition),
      [Headers.originalOffset]: String(r.offset),
      [Headers.attempts]: String(attempt),
      [Headers.error]: errorText(err)
    }
    const hs = {}
    for (const h of headers) Object.assign(hs, h)
    Object.assign(hs, extra)
    backoff = this.initialBackoffMs
    for (;;) {
      try {
        await this.producer.send({ topic: this.cfg.deadLetterTopic, messages: [{ key: r.key, value: r.value, headers: hs, timestamp: r.timestamp === undefined ? undefined : String(r.timestamp) }] })
        break
      } catch (perr) {
        this.log.error({ err: perr.message, deadLetterTopic: this.cfg.deadLetterTopic, topic: st.topic, partition: st.partition, offset: r.offset }, 'Writing to the dead-letter topic failed, retrying')
        if (!await this.sleep(Math.max(backoff, 1), st)) return 'interrupted'
        backoff = Math.min(2 * Math.max(backoff, 1), this.maxBackoffMs)
      }
    }
    this.counts.deadLettered++
    this.m.deadLettered.labels(st.topic).inc()
    this.log.info({ topic: st.topic, partition: st.partition, offset: r.offset, attempts: attempt, deadLetterTopic: this.cfg.deadLetterTopic, err: errorText(err) }, 'Record dead-lettered')
    return 'done'
  }

  stall (st, r, attempts, err) {
    st.stalled = { offset: r.offset, error: errorText(err) }
    this.m.stalled.set(this.countStalled())
    try { this.consumer.pause([{ topic: st.topic, partition: st.partition }]) } catch (e) { this.log.error({ err: e.message }, 'Pausing a stalled partition failed') }
    this.log.error({ topic: st.topic, partition: st.partition, offset: r.offset, attempts, err: errorText(err) },
      'Partition stopped: record failed every attempt and no dead-letter topic is configured')
  }

  // sleep waits ms; it resolves false when shutdown or a revoke of st
  // interrupts it.
  sleep (ms, st) {
    return new Promise(resolve => {
      const check = () => this.stopping || this.forced || (st && st.revoking)
      if (check()) return resolve(false)
      const end = Date.now() + ms
      const tick = () => {
        if (check()) return resolve(false)
        const left = end - Date.now()
        if (left <= 0) return resolve(true)
        setTimeout(tick, Math.min(left, 50))
      }
      setTimeout(tick, Math.min(ms, 50))
    })
  }
}

function errorText (err) {
  return err instanceof Error ? err.message : String(err)
}

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
