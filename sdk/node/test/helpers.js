'use strict'
// Shared helpers of the SDK's tests: a real broker (kfake, franz-go's
// in-process Kafka, run as a process of its own), a producer, committed
// offsets, handler processes that the tests start and stop by PID.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { KafkaJS } = require('@confluentinc/kafka-javascript')

const FIXTURE = path.join(__dirname, 'fixtures', 'handler.js')

/**
 * startBroker starts kfake (the binary LAGSCALE_KFAKE names; `make test`
 * and `go test ./sdk/node/` build it) and resolves with its bootstrap
 * address and a stop function (called when t, if given, ends: hooks pass
 * none and stop it themselves). LAGSCALE_TEST_BOOTSTRAP instead points the
 * tests at a running broker (Apache Kafka).
 */
async function startBroker (t) {
  if (process.env.LAGSCALE_TEST_BOOTSTRAP) {
    return { bootstrap: process.env.LAGSCALE_TEST_BOOTSTRAP, stop () {} }
  }
  const bin = process.env.LAGSCALE_KFAKE
  if (!bin) {
    throw new Error('LAGSCALE_KFAKE is not set: run these tests with `make test` or `go test ./sdk/node/` (they build kfake), or `go build -o bin/kfake ./hack/kfake` and set LAGSCALE_KFAKE=bin/kfake')
  }
  // stdin stays a pipe: kfake exits when it closes, so even a test runner
  // that dies leaves no broker behind.
  const p = spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit'] })
  const line = await new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: p.stdout })
    rl.once('line', l => { rl.close(); resolve(l.trim()) })
    p.once('exit', code => reject(new Error(`kfake exited ${code} before printing its address`)))
  })
  const stop = () => { if (p.exitCode === null) p.kill('SIGKILL') }
  if (t) t.after(stop)
  return { bootstrap: line, stop }
}

function kafka (bootstrap) {
  return new KafkaJS.Kafka({ kafkaJS: { brokers: bootstrap.split(','), logLevel: KafkaJS.logLevel.NOTHING } })
}

async function createTopic (bootstrap, topic, partitions) {
  const admin = kafka(bootstrap).admin()
  await admin.connect()
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] })
  } finally {
    await admin.disconnect()
  }
}

/** produce writes per records "<partition>-<i>" to each of partitions 0..parts-1. */
async function produce (bootstrap, topic, parts, per, { valueSize = 0, keyed = false } = {}) {
  const producer = kafka(bootstrap).producer({ 'linger.ms': 5 })
  await producer.connect()
  try {
    const pad = valueSize > 0 ? 'x'.repeat(valueSize) : ''
    const chunk = 2000
    for (let start = 0; start < per; start += chunk) {
      const sends = []
      for (let p = 0; p < parts; p++) {
        const messages = []
        for (let i = start; i < Math.min(per, start + chunk); i++) {
          const v = `${p}-${i}`
          messages.push({ partition: p, key: keyed ? `k${i}` : null, value: valueSize > 0 ? (v + pad).slice(0, Math.max(valueSize, v.length)) : v })
        }
        sends.push(producer.send({ topic, messages }))
      }
      await Promise.all(sends)
    }
  } finally {
    await producer.disconnect()
  }
}

/** lagging is how many records of topic the group has not committed. */
async function lagging (bootstrap, group, topic) {
  const admin = kafka(bootstrap).admin()
  await admin.connect()
  try {
    const ends = await admin.fetchTopicOffsets(topic)
    const committed = new Map()
    let offs = []
    try {
      offs = await admin.fetchOffsets({ groupId: group, topics: [topic] })
    } catch (err) {
      if (err.type !== 'ERR_GROUP_ID_NOT_FOUND') throw err // no group yet: nothing committed
    }
    for (const t of offs) {
      for (const p of t.partitions) {
        if (Number(p.offset) > 0) committed.set(p.partition, Number(p.offset))
      }
    }
    let lag = 0
    for (const e of ends) lag += Number(e.high) - (committed.get(e.partition) || 0)
    return lag
  } finally {
    await admin.disconnect()
  }
}

/** readTopic reads every record of topic (a test's dead-letter topic) from the start. */
async function readTopic (bootstrap, topic, want, timeoutMs = 30000) {
  const consumer = kafka(bootstrap).consumer({ kafkaJS: { groupId: 'reader-' + process.pid + '-' + Date.now(), fromBeginning: true } })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic] })
  const got = []
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${got.length} records of ${topic}, want ${want}`)), timeoutMs)
      consumer.run({
        eachMessage: async ({ message }) => {
          got.push(message)
          if (got.length >= want) { clearTimeout(timer); resolve() }
        }
      })
    })
  } finally {
    await consumer.disconnect()
  }
  return got
}

/** tmpdir makes a directory removed when the test ends. */
function tmpdir (t) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lagscale-node-'))
  t.after(() => fs.rmSync(d, { recursive: true, force: true }))
  return d
}

/**
 * startHandler runs test/fixtures/handler.js (a handler on this SDK) with
 * env added to the test's environment. It is killed, by its PID, when the
 * test ends.
 */
function startHandler (t, env, script = FIXTURE) {
  const p = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const h = { proc: p, stdout: '', stderr: '', code: undefined, signal: undefined }
  p.stdout.on('data', b => { h.stdout += b })
  p.stderr.on('data', b => { h.stderr += b; if (process.env.LAGSCALE_TEST_VERBOSE) process.stderr.write(b) })
  h.exited = new Promise(resolve => p.once('exit', (code, signal) => { h.code = code; h.signal = signal; resolve(code) }))
  h.kill = sig => { if (h.code === undefined && p.exitCode === null) p.kill(sig) }
  h.logs = () => h.stderr.split('\n').filter(Boolean).map(l => { try { return JSON.parse(l) } catch { return { raw: l } } })
  t.after(() => h.kill('SIGKILL'))
  return h
}

/** waitExit waits up to timeoutMs for a handler process to exit and returns its code. */
async function waitExit (h, timeoutMs = 60000) {
  let timer
  const timeout = new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`handler ${h.proc.pid} did not exit within ${timeoutMs} ms; stderr:\n${h.stderr.slice(-3000)}`)), timeoutMs) })
  try {
    return await Promise.race([h.exited, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** waitFor polls cond until it holds, failing with what after timeoutMs. */
async function waitFor (what, timeoutMs, cond) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    last = await cond()
    if (last === true) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ': ' + last : ''}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** handledLog reads a HANDLED_LOG file into counts per "partition offset". */
function handledLog (file) {
  const seen = new Map()
  let text = ''
  try { text = fs.readFileSync(file, 'utf8') } catch (e) { if (e.code !== 'ENOENT') throw e }
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    if (f.length === 3) seen.set(f[1] + ' ' + f[2], (seen.get(f[1] + ' ' + f[2]) || 0) + 1)
  }
  return seen
}

/** everyRecordHandled throws unless every offset 0..per-1 of every partition was handled; it returns the duplicates. */
function everyRecordHandled (seen, parts, per) {
  let dups = 0
  for (let p = 0; p < parts; p++) {
    for (let o = 0; o < per; o++) {
      const n = seen.get(p + ' ' + o) || 0
      if (n === 0) throw new Error(`partition ${p} offset ${o} was never handled`)
      dups += n - 1
    }
  }
  return dups
}

/**
 * groupType is the KAFKA_GROUP_TYPE the tests' handlers use:
 * LAGSCALE_TEST_GROUP_TYPE (test/kafka runs the tests once per type on
 * Apache Kafka), classic by default.
 */
const groupType = process.env.LAGSCALE_TEST_GROUP_TYPE || 'classic'

function contractEnv (bootstrap, topic, group, extra = {}) {
  return {
    KAFKA_BOOTSTRAP_SERVERS: bootstrap,
    KAFKA_GROUP_TYPE: groupType,
    KAFKA_TOPICS: topic,
    KAFKA_CONSUMER_GROUP: group,
    KAFKA_SECURITY_PROTOCOL: 'PLAINTEXT',
    KAFKA_AUTO_OFFSET_RESET: 'earliest',
    LAGSCALE_CONSUMER: 'default/' + group,
    LAGSCALE_HTTP_ADDR: '127.0.0.1:0',
    ...extra
  }
}

module.exports = { startBroker, kafka, createTopic, produce, lagging, readTopic, tmpdir, startHandler, waitExit, waitFor, handledLog, everyRecordHandled, contractEnv, groupType, FIXTURE }
