'use strict'
// Example lagscale handler in Node.js with kafkajs.
//
// It honours the same environment contract as pkg/handler (see
// docs/architecture.md, "The handler contract"), commits an offset only after
// its record (and every record before it in the partition) was handled,
// dead-letters records that fail every attempt when
// LAGSCALE_DEAD_LETTER_TOPIC is set, and on SIGTERM finishes the record in
// hand, commits, leaves the group and exits 0. A second signal exits at once
// with code 2.
//
// Simulated work: WORK_MS per record, FAIL_EVERY=N makes every record whose
// offset+1 is a multiple of N fail. HANDLED_LOG appends "topic partition
// offset" per handled record (used by the tests).

const fs = require('fs')
const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')

// franz-go (and many Java clients) compress with snappy by default; kafkajs
// can only read those batches with the codec registered.
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec

function fail (msg) {
  process.stderr.write(msg + '\n')
  process.exit(1)
}

function list (name) {
  const v = (process.env[name] || '').split(',').map(s => s.trim()).filter(Boolean)
  if (v.length === 0) fail(`${name} is not set: expected a comma-separated list`)
  return v
}

function nonNegative (name) {
  const v = process.env[name]
  if (v === undefined || v === '') return 0
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) fail(`${name}=${JSON.stringify(v)}: expected a non-negative integer`)
  return n
}

function config () {
  const brokers = list('KAFKA_BOOTSTRAP_SERVERS')
  const topics = list('KAFKA_TOPICS')
  const groupId = (process.env.KAFKA_CONSUMER_GROUP || '').trim()
  if (!groupId) fail('KAFKA_CONSUMER_GROUP is not set: expected the consumer group name')
  const protocol = (process.env.KAFKA_SECURITY_PROTOCOL || 'PLAINTEXT').toUpperCase()
  if (!['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'].includes(protocol)) {
    fail(`KAFKA_SECURITY_PROTOCOL=${JSON.stringify(protocol)}: expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL`)
  }
  let ssl = false
  if (protocol === 'SSL' || protocol === 'SASL_SSL') {
    ssl = { rejectUnauthorized: process.env.KAFKA_TLS_INSECURE_SKIP_VERIFY !== 'true' }
    if (process.env.KAFKA_TLS_CA_FILE) ssl.ca = [fs.readFileSync(process.env.KAFKA_TLS_CA_FILE, 'utf8')]
    if (process.env.KAFKA_TLS_CERT_FILE) ssl.cert = fs.readFileSync(process.env.KAFKA_TLS_CERT_FILE, 'utf8')
    if (process.env.KAFKA_TLS_KEY_FILE) ssl.key = fs.readFileSync(process.env.KAFKA_TLS_KEY_FILE, 'utf8')
  }
  let sasl
  if (protocol.startsWith('SASL_')) {
    const mechanism = (process.env.KAFKA_SASL_MECHANISM || '').toLowerCase()
    if (!['plain', 'scram-sha-256', 'scram-sha-512'].includes(mechanism)) {
      fail('KAFKA_SASL_MECHANISM: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512')
    }
    if (!process.env.KAFKA_SASL_USERNAME) fail('KAFKA_SASL_USERNAME is not set')
    if (!process.env.KAFKA_SASL_PASSWORD) fail('KAFKA_SASL_PASSWORD is not set')
    sasl = { mechanism, username: process.env.KAFKA_SASL_USERNAME, password: process.env.KAFKA_SASL_PASSWORD }
  }
  const reset = (process.env.KAFKA_AUTO_OFFSET_RESET || 'earliest').toLowerCase()
  if (!['earliest', 'latest'].includes(reset)) fail(`KAFKA_AUTO_OFFSET_RESET=${JSON.stringify(reset)}: expected earliest or latest`)
  return {
    brokers,
    topics,
    groupId,
    ssl,
    sasl,
    fromBeginning: reset === 'earliest',
    clientId: 'lagscale-node-handler/' + (process.env.LAGSCALE_CONSUMER || groupId),
    deadLetterTopic: (process.env.LAGSCALE_DEAD_LETTER_TOPIC || '').trim(),
    workMs: nonNegative('WORK_MS'),
    failEvery: nonNegative('FAIL_EVERY'),
    attempts: 3,
    handledLog: process.env.HANDLED_LOG ? fs.openSync(process.env.HANDLED_LOG, 'a') : null
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function log (msg, fields) {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), msg, ...fields }) + '\n')
}

async function main () {
  const cfg = config()
  const kafka = new Kafka({ clientId: cfg.clientId, brokers: cfg.brokers, ssl: cfg.ssl, sasl: cfg.sasl, logLevel: logLevel.WARN })
  const consumer = kafka.consumer({ groupId: cfg.groupId })
  const producer = kafka.producer()
  const stats = { handled: 0, failed: 0, deadLettered: 0 }
  let stopping = false

  // handle is the simulated business logic.
  async function handle (topic, partition, message) {
    const offset = Number(message.offset)
    if (cfg.failEvery > 0 && (offset + 1) % cfg.failEvery === 0) throw new Error('simulated poison record')
    if (cfg.workMs > 0) await sleep(cfg.workMs)
    if (cfg.handledLog !== null) fs.writeSync(cfg.handledLog, `${topic} ${partition} ${message.offset}\n`)
  }

  // settle handles a message with retries; it returns true when the
  // message may be committed (handled or dead-lettered).
  async function settle (topic, partition, message) {
    let err
    for (let attempt = 1; attempt <= cfg.attempts; attempt++) {
      try {
        await handle(topic, partition, message)
        stats.handled++
        return true
      } catch (e) {
        err = e
        if (attempt < cfg.attempts) await sleep(50 * 2 ** (attempt - 1))
      }
    }
    stats.failed++
    if (!cfg.deadLetterTopic) {
      log('Partition stopped: record failed every attempt and no dead-letter topic is configured', { topic, partition, offset: message.offset, error: String(err) })
      return false
    }
    await producer.send({
      topic: cfg.deadLetterTopic,
      messages: [{
        key: message.key,
        value: message.value,
        headers: {
          ...message.headers,
          'lagscale.original.topic': topic,
          'lagscale.original.partition': String(partition),
          'lagscale.original.offset': String(message.offset),
          'lagscale.attempts': String(cfg.attempts),
          'lagscale.error': String(err && err.message)
        }
      }]
    })
    stats.deadLettered++
    return true
  }

  // Signal handlers go in before connecting: a SIGTERM that arrives while
  // joining must still drain, commit and exit 0, not kill the process.
  let signals = 0
  const onSignal = async sig => {
    signals++
    if (signals > 1) {
      log('Second signal, exiting without committing unfinished work', { signal: sig })
      process.exit(2)
    }
    stopping = true
    log('Shutting down: finishing the record in hand', { signal: sig })
    // disconnect waits for the running eachBatch, which commits before it
    // returns, then leaves the group.
    await consumer.disconnect()
    await producer.disconnect()
    process.stdout.write(`summary handled=${stats.handled} failed=${stats.failed} deadLettered=${stats.deadLettered}\n`)
    process.exit(0)
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)

  const stalled = new Set()
  await producer.connect()
  await consumer.connect()
  for (const topic of cfg.topics) await consumer.subscribe({ topic, fromBeginning: cfg.fromBeginning })
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      const { topic, partition } = batch
      if (stalled.has(`${topic}/${partition}`)) return
      let pending = null
      let lastCommit = Date.now()
      const commit = async () => {
        if (pending === null) return
        const offset = pending
        pending = null
        await consumer.commitOffsets([{ topic, partition, offset }])
        lastCommit = Date.now()
      }
      for (const message of batch.messages) {
        if (stopping || !isRunning() || isStale()) break
        if (!await settle(topic, partition, message)) {
          stalled.add(`${topic}/${partition}`)
          consumer.pause([{ topic, partitions: [partition] }])
          break
        }
        resolveOffset(message.offset)
        pending = (BigInt(message.offset) + 1n).toString()
        if (Date.now() - lastCommit > 500) {
          await commit()
          await heartbeat()
        }
      }
      await commit()
    }
  })
  log('Consuming', { topics: cfg.topics, group: cfg.groupId })

}

main().catch(err => fail(`node-handler: ${err && err.stack ? err.stack : err}`))
