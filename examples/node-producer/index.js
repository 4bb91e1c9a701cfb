'use strict'
// Example producer in Node.js: a service that sends keyed JSON events, on
// the same Kafka client (@confluentinc/kafka-javascript, as installed by
// @lagscale/handler) that the handler SDK consumes with.
//
// It reaches the cluster through the handler contract's connection
// variables (KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL, SASL and
// TLS), so it runs next to a handler with the same environment. The events
// are orders: {"id", "customer", "amount", "at"}, keyed by customer, so
// that every event of one customer lands on one partition, in order.
//
//	TOPIC       topic to write (default: the first of KAFKA_TOPICS)
//	RATE        events per second (default 100)
//	COUNT       events to send, then exit (default 0: until SIGTERM)
//	CUSTOMERS   distinct keys (default 100)
//
// It prints "sent N" on stdout when it stops; SIGTERM flushes what is in
// flight first.

const { Kafka, connectionFromEnv } = require('@lagscale/handler')

function nonNegative (name, def) {
  const v = process.env[name]
  if (v === undefined || v === '') return def
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${JSON.stringify(v)}: expected a non-negative integer`)
  return n
}

function log (msg, fields) {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), msg, ...fields }) + '\n')
}

async function main () {
  const conn = connectionFromEnv(process.env)
  const topic = (process.env.TOPIC || (process.env.KAFKA_TOPICS || '').split(',')[0] || '').trim()
  if (!topic) throw new Error('TOPIC is not set (nor KAFKA_TOPICS): expected the topic to write')
  const rate = nonNegative('RATE', 100)
  const count = nonNegative('COUNT', 0)
  const customers = Math.max(1, nonNegative('CUSTOMERS', 100))
  if (rate === 0) throw new Error('RATE=0: expected at least one event per second')

  const producer = new Kafka.KafkaJS.Kafka({}).producer({ ...conn, 'client.id': 'lagscale-node-producer', 'enable.idempotence': true, 'linger.ms': 5, log_level: 3 })
  await producer.connect()
  log('Producing', { topic, rate, count, customers })

  let stopping = false
  const stop = sig => { if (!stopping) log('Stopping: flushing events in flight', { signal: sig }); stopping = true }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)

  // Every tick sends the events due since the start, so the rate holds
  // even when a send takes longer than a tick.
  const tickMs = 50
  const start = Date.now()
  let sent = 0
  let id = 0
  while (!stopping && (count === 0 || id < count)) {
    const due = Math.floor((Date.now() - start) * rate / 1000) + 1
    const until = count === 0 ? due : Math.min(due, count)
    const messages = []
    for (; id < until; id++) {
      const customer = `customer-${id % customers}`
      const event = { id, customer, amount: Math.round(Math.random() * 10000) / 100, at: new Date().toISOString() }
      messages.push({ key: customer, value: JSON.stringify(event) })
    }
    if (messages.length > 0) {
      await producer.send({ topic, messages })
      sent += messages.length
    }
    if (!stopping && (count === 0 || id < count)) await new Promise(resolve => setTimeout(resolve, tickMs))
  }
  await producer.disconnect()
  process.stdout.write(`sent ${sent}\n`)
}

main().then(() => process.exit(0), err => {
  process.stderr.write(`node-producer: ${err && err.message ? err.message : err}\n`)
  process.exit(1)
})
