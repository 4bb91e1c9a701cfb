'use strict'
// Retries and dead-lettering, as pkg/handler's retry.go and deadletter.go:
// a failed record is tried again with exponential backoff, then written to
// the dead-letter topic with headers that say where it came from, or, with
// no dead-letter topic, its partition stops at it.

const { countStalled } = require('./partition')

/** Headers added to a record written to the dead-letter topic, as in pkg/handler. */
const Headers = Object.freeze({
  originalTopic: 'lagscale.original.topic',
  originalPartition: 'lagscale.original.partition',
  originalOffset: 'lagscale.original.offset',
  attempts: 'lagscale.attempts',
  error: 'lagscale.error'
})

// errorText is what logs and the lagscale.error header say of err.
function errorText (err) {
  return err instanceof Error ? err.message : String(err)
}

// asError turns what a handler function threw into an error: throwing
// undefined or null still fails the record.
function asError (e) {
  return e === undefined || e === null ? new Error(String(e)) : e
}

// nextBackoff doubles backoff up to max.
function nextBackoff (backoff, max) {
  return Math.min(2 * backoff, max)
}

// deadLetterHeaders returns the headers of r's dead-letter copy: r's own
// (the last value of a repeated key wins), then the lagscale.* ones.
function deadLetterHeaders (r, attempts, err) {
  const hs = {}
  for (const h of r.headers || []) {
    const k = Object.keys(h)[0]
    hs[k] = h[k]
  }
  hs[Headers.originalTopic] = r.topic
  hs[Headers.originalPartition] = String(r.partition)
  hs[Headers.originalOffset] = String(r.offset)
  hs[Headers.attempts] = String(attempts)
  hs[Headers.error] = errorText(err)
  return hs
}

// Handler methods (mixed into Handler.prototype).

// retry tries a failed record again with backoff, then dead-letters it or
// stalls its partition. It returns 'done', 'stalled' or 'interrupted'.
async function retry (st, r, ctx, firstErr) {
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
      err = asError(e)
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
    backoff = nextBackoff(backoff, this.maxBackoffMs)
  }
  this.counts.failed++
  this.m.failed.labels(st.topic).inc()
  if (!this.cfg.deadLetterTopic) {
    this.stall(st, r, attempt, err)
    return 'stalled'
  }
  if (!await this.deadLetter(st, r, attempt, err)) return 'interrupted'
  this.counts.deadLettered++
  this.m.deadLettered.labels(st.topic).inc()
  this.log.info({ topic: st.topic, partition: st.partition, offset: r.offset, attempts: attempt, deadLetterTopic: this.cfg.deadLetterTopic, err: errorText(err) }, 'Record dead-lettered')
  return 'done'
}

// deadLetter writes r to the dead-letter topic, retrying with backoff until
// it succeeds; it returns false when shutdown or a revoke interrupts it.
async function deadLetter (st, r, attempts, err) {
  // r is from st's queue: r.topic and r.partition are st's.
  const headers = deadLetterHeaders(r, attempts, err)
  let backoff = this.initialBackoffMs
  for (;;) {
    try {
      await this.producer.send({ topic: this.cfg.deadLetterTopic, messages: [{ key: r.key, value: r.value, headers, timestamp: r.timestamp === undefined ? undefined : String(r.timestamp) }] })
      return true
    } catch (perr) {
      this.log.error({ err: perr.message, deadLetterTopic: this.cfg.deadLetterTopic, topic: st.topic, partition: st.partition, offset: r.offset }, 'Writing to the dead-letter topic failed, retrying')
      if (!await this.sleep(Math.max(backoff, 1), st)) return false
      backoff = nextBackoff(Math.max(backoff, 1), this.maxBackoffMs)
    }
  }
}

// stall stops st at r: the partition is paused, and nothing at or after r
// is committed until it is revoked.
function stall (st, r, attempts, err) {
  st.stalled = { offset: r.offset, error: errorText(err) }
  this.m.stalled.set(countStalled(this.parts.values()))
  try { this.consumer.pause([{ topic: st.topic, partition: st.partition }]) } catch (e) { this.log.error({ err: e.message }, 'Pausing a stalled partition failed') }
  this.log.error({ topic: st.topic, partition: st.partition, offset: r.offset, attempts, err: errorText(err) },
    'Partition stopped: record failed every attempt and no dead-letter topic is configured')
}

// sleep waits ms; it resolves false when shutdown or a revoke of st
// interrupts it.
function sleep (ms, st) {
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

module.exports = { Headers, errorText, asError, nextBackoff, deadLetterHeaders, methods: { retry, deadLetter, stall, sleep } }
