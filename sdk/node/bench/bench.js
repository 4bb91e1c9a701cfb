'use strict'
// One benchmark run, in a process of its own: consume `records` records of
// `topic` in a fresh group and print "records/s N". `sdk` runs the SDK
// with a no-op handler function; `bare` is the loop a program would write
// on the same client without the SDK (poll, call, commit once a second).
// bench/ratio.js runs the two alternately and compares their medians.
//
//	node bench/bench.js sdk|bare BOOTSTRAP TOPIC RECORDS

const Kafka = require('@confluentinc/kafka-javascript')
const { Handler } = require('../lib')
const pino = require('pino')

const [mode, bootstrap, topic, recordsArg] = process.argv.slice(2)
const records = Number(recordsArg)
const group = `bench-${mode}-${process.pid}-${Date.now()}`

async function sdk () {
  let n = 0
  let t0 = 0
  let t1 = 0
  let h
  const done = new Promise(resolve => {
    h = new Handler((m) => {
      if (n === 0) t0 = performance.now()
      if (++n === records) { t1 = performance.now(); resolve() }
    }, {
      env: { KAFKA_BOOTSTRAP_SERVERS: bootstrap, KAFKA_TOPICS: topic, KAFKA_CONSUMER_GROUP: group },
      httpAddr: '',
      signals: false,
      logger: pino({ level: 'warn' }, pino.destination(2))
    })
  })
  const running = h.run()
  await done
  h.stop()
  await running
  return (records - 1) / ((t1 - t0) / 1000)
}

async function bare () {
  const consumer = new Kafka.KafkaConsumer({
    'bootstrap.servers': bootstrap,
    'group.id': group,
    'enable.auto.commit': false,
    'enable.auto.offset.store': false,
    'isolation.level': 'read_committed'
    // The assignors are librdkafka's defaults, as the SDK's for classic
    // groups; with one member they make no difference to throughput.
  }, { 'auto.offset.reset': 'earliest' })
  await new Promise((resolve, reject) => consumer.connect({}, err => err ? reject(err) : resolve()))
  consumer.setDefaultConsumeTimeout(100)
  consumer.setDefaultIsTimeoutOnlyForFirstMessage(true)
  consumer.subscribe([topic])
  const next = new Map()
  const noop = () => {}
  let n = 0
  let t0 = 0
  let lastCommit = Date.now()
  for (;;) {
    const msgs = await new Promise((resolve, reject) => consumer.consume(1000, (err, m) => err ? reject(err) : resolve(m)))
    for (const m of msgs) {
      if (n === 0) t0 = performance.now()
      noop(m)
      next.set(m.partition, m.offset + 1)
      n++
    }
    if (n >= records) break
    if (Date.now() - lastCommit >= 1000) {
      consumer.commit([...next].map(([partition, offset]) => ({ topic, partition, offset })))
      lastCommit = Date.now()
    }
  }
  const t1 = performance.now()
  await new Promise(resolve => consumer.disconnect(() => resolve()))
  return (records - 1) / ((t1 - t0) / 1000)
}

(mode === 'sdk' ? sdk() : bare()).then(rate => {
  process.stdout.write(`records/s ${rate.toFixed(0)}\n`)
  process.exit(0)
}, err => {
  process.stderr.write(`bench: ${err.stack || err}\n`)
  process.exit(1)
})
