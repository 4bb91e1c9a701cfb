'use strict'
// Batches, as pkg/handler's batch.go: workers run over the records a batch
// shares out between partitions (partition.shareBatch); each partition's
// records are handled one after the other, in offset order, and its done
// offset moves past each record that was handled or dead-lettered.

const { shareBatch, trim } = require('./partition')
const { asError } = require('./retry')

// At most this many calls are timed with one clock read.
const MAX_RUN = 16

// Handler methods (mixed into Handler.prototype).

// runBatch runs up to concurrency workers over up to maxPollRecords queued
// records, shared out between the partitions that have some.
async function runBatch () {
  const { live, ends } = shareBatch(this.parts.values(), this.maxPollRecords)
  if (live.length === 0) return
  let next = 0
  const worker = async () => {
    while (next < live.length && !this.stopping) {
      const i = next++
      const st = live[i]
      await this.runPartition(st, ends[i])
      this.queued -= trim(st)
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
  // A batch may take longer than the commit interval (1,000 records at
  // 20 ms each, one partition at a time, take 20 s): what is done is
  // committed on the interval while it runs, so the group's commits keep
  // their cadence and lagscale does not read a busy handler as stuck.
  const ticker = setInterval(() => { if (!this.stopping) this.commit(false) }, this.commitIntervalMs)
  try {
    await new Promise((resolve, reject) => {
      this.wakeForced = resolve
      all.then(resolve, reject)
    })
  } finally {
    clearInterval(ticker)
  }
  this.wakeForced = null
}

// runPartition handles a partition's queued records up to end, in order,
// moving st.head past each record it settles.
//
// Calls are timed in runs: one clock read closes a run of up to MAX_RUN
// calls while calls stay fast, and every call is timed alone once one is
// slow (see BatchHistogram). Reading the clock and updating shared metrics
// per record would cost more than a fast handler call.
async function runPartition (st, end) {
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
        err = asError(e)
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
      // Settled records are released at once: the queue keeps its array
      // until it drains or its head passes partition.COMPACT_AFTER (see
      // trim), and records kept that long outlive the young generation,
      // which made garbage collection the SDK's largest cost.
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

module.exports = { MAX_RUN, methods: { runBatch, runPartition } }
