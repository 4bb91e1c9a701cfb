'use strict'
// Example lagscale handler in Node.js, on @lagscale/handler (sdk/node).
//
// The SDK reads the handler contract from the environment (see
// docs/handler-contract.md), commits an offset only after
// its record and every record before it on the partition were handled,
// retries a failing record and then dead-letters it (or stops its
// partition without LAGSCALE_DEAD_LETTER_TOPIC), drains on SIGTERM and
// serves /healthz, /readyz and /metrics on LAGSCALE_HTTP_ADDR.
//
// The work is simulated, as in examples/handler (Go): WORK_MS per record,
// FAIL_EVERY=N makes every record whose offset+1 is a multiple of N fail,
// HANDLED_LOG appends "topic partition offset" per handled record (the
// tests use it). It prints a one-line summary when it stops.

const fs = require('node:fs')
const { run } = require('@lagscale/handler')

function nonNegative (name) {
  const v = process.env[name]
  if (v === undefined || v === '') return 0
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${JSON.stringify(v)}: expected a non-negative integer`)
  return n
}

async function main () {
  const workMs = nonNegative('WORK_MS')
  const failEvery = nonNegative('FAIL_EVERY')
  const concurrency = nonNegative('CONCURRENCY')
  const log = process.env.HANDLED_LOG ? fs.openSync(process.env.HANDLED_LOG, 'a') : null
  const options = { attempts: 3, initialBackoffMs: 50, maxBackoffMs: 1000 }
  if (concurrency > 0) options.concurrency = concurrency
  const s = await run(async (message, ctx) => {
    if (failEvery > 0 && (message.offset + 1) % failEvery === 0) throw new Error('simulated poison record')
    if (workMs > 0) await new Promise(resolve => setTimeout(resolve, workMs))
    if (log !== null) fs.writeSync(log, `${message.topic} ${message.partition} ${message.offset}\n`)
  }, options)
  process.stdout.write(`summary handled=${s.handled} failed=${s.failed} deadLettered=${s.deadLettered} retries=${s.retries} stalledPartitions=${s.stalled.length}\n`)
}

main().then(() => process.exit(0), err => {
  process.stderr.write(`node-handler: ${err && err.message ? err.message : err}\n`)
  process.exit(1)
})
