'use strict'
// Handler processes on this SDK against a real broker: commits, health and
// metrics, the KIP-848 group type, dead-lettering, a stalled partition,
// drain on SIGTERM, the shutdown deadline and the second signal.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { startBroker, createTopic, produce, lagging, readTopic, tmpdir, startHandler, waitExit, waitFor, handledLog, everyRecordHandled, contractEnv, groupType, kafka } = require('./helpers')

let broker
let n = 0
test.before(async () => { broker = await startBroker() })
test.after(() => broker.stop())

function names () {
  n++
  return { topic: `t${n}-${process.pid}`, group: `g${n}-${process.pid}` }
}

/** httpAddr waits for the handler's "Serving health and metrics" log line. */
async function httpAddr (h) {
  let addr
  await waitFor('the health server address in the log', 20000, () => {
    const l = h.logs().find(e => e.msg === 'Serving health and metrics')
    addr = l && l.addr
    return !!addr
  })
  return addr
}

async function get (addr, p) {
  const res = await fetch(`http://${addr}${p}`)
  return { status: res.status, body: await res.text() }
}

/** committedOffsets returns partition -> committed offset of group on topic. */
async function committedOffsets (group, topic) {
  const admin = kafka(broker.bootstrap).admin()
  await admin.connect()
  try {
    const out = new Map()
    let offs = []
    try {
      offs = await admin.fetchOffsets({ groupId: group, topics: [topic] })
    } catch (err) {
      if (err.type !== 'ERR_GROUP_ID_NOT_FOUND') throw err
    }
    for (const t of offs) {
      for (const p of t.partitions) out.set(p.partition, Number(p.offset))
    }
    return out
  } finally {
    await admin.disconnect()
  }
}

/** assertCommittedWereHandled fails when a committed offset is ahead of a record that was not handled. */
function assertCommittedWereHandled (committed, seen) {
  for (const [p, c] of committed) {
    for (let o = 0; o < c; o++) {
      assert.ok((seen.get(p + ' ' + o) || 0) > 0, `partition ${p}: committed ${c} but offset ${o} was never handled`)
    }
  }
}

// Both group types on kfake; on Apache Kafka test/kafka runs this file once
// per type (LAGSCALE_TEST_GROUP_TYPE).
for (const gt of process.env.LAGSCALE_TEST_GROUP_TYPE ? [groupType] : ['classic', 'consumer']) {
  test(`${gt} group: handles and commits everything, serves /healthz, /readyz and /metrics, exits 0 on SIGTERM`, async (t) => {
    const { topic, group } = names()
    const parts = 4
    const per = 250
    await createTopic(broker.bootstrap, topic, parts)
    await produce(broker.bootstrap, topic, parts, per)
    const log = path.join(tmpdir(t), 'handled')
    const h = startHandler(t, contractEnv(broker.bootstrap, topic, group, { HANDLED_LOG: log, KAFKA_GROUP_TYPE: gt }))
    const addr = await httpAddr(h)
    assert.equal((await get(addr, '/healthz')).status, 200)
    await waitFor('every record committed', 60000, async () => (await lagging(broker.bootstrap, group, topic)) === 0 || 'lagging')
    assert.equal((await get(addr, '/readyz')).status, 200)
    const metrics = (await get(addr, '/metrics')).body
    assert.match(metrics, new RegExp(`lagscale_handler_records_handled_total\\{topic="${topic}"\\} ${parts * per}\\b`))
    assert.match(metrics, /lagscale_handler_partitions_owned 4\b/)
    assert.match(metrics, new RegExp(`lagscale_handler_handling_seconds_count ${parts * per}\\b`))
    for (const name of ['lagscale_handler_records_failed_total', 'lagscale_handler_records_dead_lettered_total', 'lagscale_handler_attempt_errors_total', 'lagscale_handler_commit_errors_total', 'lagscale_handler_in_flight_records', 'lagscale_handler_partitions_stalled', 'process_cpu_seconds_total']) {
      assert.match(metrics, new RegExp(`# TYPE ${name} `), name)
    }
    h.kill('SIGTERM')
    assert.equal(await waitExit(h), 0, h.stderr)
    assert.match(h.stdout, new RegExp(`summary handled=${parts * per} failed=0`))
    const dups = everyRecordHandled(handledLog(log), parts, per)
    assert.equal(dups, 0)
    const logs = h.logs()
    assert.ok(logs.every(l => typeof l.msg === 'string' && l.group === group), 'every log line is JSON with msg and group')
    assert.ok(logs.some(l => l.msg === 'Consuming' && l.groupType === gt))
  })
}

test('a record that fails every attempt goes to the dead-letter topic with its origin, and is committed', async (t) => {
  const { topic, group } = names()
  const dlq = topic + '-dlq'
  const parts = 2
  const per = 50
  await createTopic(broker.bootstrap, topic, parts)
  await createTopic(broker.bootstrap, dlq, 1)
  await produce(broker.bootstrap, topic, parts, per)
  const log = path.join(tmpdir(t), 'handled')
  const h = startHandler(t, contractEnv(broker.bootstrap, topic, group, { HANDLED_LOG: log, FAIL_EVERY: '10', LAGSCALE_DEAD_LETTER_TOPIC: dlq }))
  await waitFor('every record committed', 60000, async () => (await lagging(broker.bootstrap, group, topic)) === 0 || 'lagging')
  const poison = parts * (per / 10)
  const dead = await readTopic(broker.bootstrap, dlq, poison)
  assert.equal(dead.length, poison)
  const origins = new Set()
  for (const m of dead) {
    const hs = Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [k, String(v)]))
    assert.equal(hs['lagscale.original.topic'], topic)
    assert.equal(hs['lagscale.attempts'], '3')
    assert.equal(hs['lagscale.error'], 'simulated poison record')
    const off = Number(hs['lagscale.original.offset'])
    assert.equal((off + 1) % 10, 0, 'only poison offsets are dead-lettered')
    assert.equal(String(m.value), `${hs['lagscale.original.partition']}-${off}`, 'the original value is kept')
    origins.add(hs['lagscale.original.partition'] + ' ' + off)
  }
  assert.equal(origins.size, poison, 'each poison record once')
  h.kill('SIGTERM')
  assert.equal(await waitExit(h), 0, h.stderr)
  assert.match(h.stdout, new RegExp(`handled=${parts * per - poison} failed=${poison} deadLettered=${poison}`))
  const seen = handledLog(log)
  for (let p = 0; p < parts; p++) {
    for (let o = 0; o < per; o++) assert.equal(seen.has(p + ' ' + o), (o + 1) % 10 !== 0, `partition ${p} offset ${o}`)
  }
})

test('without a dead-letter topic the partition stalls at the failing record, is reported, and nothing past it is committed', async (t) => {
  const { topic, group } = names()
  const parts = 2
  const per = 40
  await createTopic(broker.bootstrap, topic, parts)
  await produce(broker.bootstrap, topic, parts, per)
  const log = path.join(tmpdir(t), 'handled')
  // FAIL_EVERY=25: offset 24 of each partition is poison.
  const h = startHandler(t, contractEnv(broker.bootstrap, topic, group, { HANDLED_LOG: log, FAIL_EVERY: '25' }))
  const addr = await httpAddr(h)
  await waitFor('both partitions reported stalled', 60000, async () => {
    const m = (await get(addr, '/metrics')).body
    return /lagscale_handler_partitions_stalled 2\b/.test(m) || 'not yet'
  })
  await waitFor('offsets committed up to the failing record', 30000, async () => {
    const c = await committedOffsets(group, topic)
    return (c.get(0) === 24 && c.get(1) === 24) || JSON.stringify([...c])
  })
  const stalls = h.logs().filter(l => l.msg === 'Partition stopped: record failed every attempt and no dead-letter topic is configured')
  assert.deepEqual(stalls.map(l => `${l.partition} ${l.offset} ${l.attempts}`).sort(), ['0 24 3', '1 24 3'])
  h.kill('SIGTERM')
  assert.equal(await waitExit(h), 0, h.stderr)
  assert.match(h.stdout, /failed=2 deadLettered=0 retries=4 stalledPartitions=2/)
  const c = await committedOffsets(group, topic)
  assert.deepEqual([c.get(0), c.get(1)], [24, 24], 'the stalled records and those after them stay uncommitted')
  const seen = handledLog(log)
  for (let p = 0; p < parts; p++) {
    for (let o = 25; o < per; o++) assert.ok(!seen.has(p + ' ' + o), `partition ${p} offset ${o} handled past the stall`)
  }
})

test('SIGTERM drains: in-flight records finish, what was handled is committed, nothing else', async (t) => {
  const { topic, group } = names()
  const parts = 4
  const per = 200
  await createTopic(broker.bootstrap, topic, parts)
  await produce(broker.bootstrap, topic, parts, per)
  const log = path.join(tmpdir(t), 'handled')
  const h = startHandler(t, contractEnv(broker.bootstrap, topic, group, { HANDLED_LOG: log, WORK_MS: '20' }))
  await waitFor('some records handled', 60000, () => handledLog(log).size >= 40 || 'not yet')
  h.kill('SIGTERM')
  assert.equal(await waitExit(h), 0, h.stderr)
  const seen = handledLog(log)
  assert.ok(seen.size < parts * per, 'stopped before the end')
  const committed = await committedOffsets(group, topic)
  let total = 0
  for (const c of committed.values()) total += c
  assert.equal(total, seen.size, 'exactly the handled records are committed')
  assertCommittedWereHandled(committed, seen)
  assert.match(h.stdout, new RegExp(`summary handled=${seen.size} `))
})

test('the shutdown deadline abandons a stuck record uncommitted; a second signal exits at once with 2', async (t) => {
  const { topic, group } = names()
  await createTopic(broker.bootstrap, topic, 1)
  await produce(broker.bootstrap, topic, 1, 5)
  const dir = tmpdir(t)

  // WORK_MS far beyond the deadline: the first record never finishes.
  // Each signal is sent once a record is in flight (STARTED_LOG), not on
  // the assignment alone: on Apache Kafka the first fetch can come later,
  // and a handler with nothing in flight drains at once and exits 0.
  const log = path.join(dir, 'handled')
  const started = path.join(dir, 'started')
  const inFlight = (file) => () => (fs.existsSync(file) && fs.readFileSync(file, 'utf8').length > 0) || 'not yet'
  const h = startHandler(t, contractEnv(broker.bootstrap, topic, group, { HANDLED_LOG: log, STARTED_LOG: started, WORK_MS: '600000', SHUTDOWN_TIMEOUT_MS: '500' }))
  await waitFor('a record in flight', 30000, inFlight(started))
  const t0 = Date.now()
  h.kill('SIGTERM')
  assert.equal(await waitExit(h), 0, h.stderr)
  assert.ok(h.logs().some(l => l.msg === 'Shutdown timeout expired: abandoning unfinished records, they stay uncommitted'))
  t.diagnostic(`exited ${Date.now() - t0} ms after SIGTERM`)
  assert.equal((await committedOffsets(group, topic)).get(0) || -1, -1, 'nothing committed')

  const started2 = path.join(dir, 'started2')
  const h2 = startHandler(t, contractEnv(broker.bootstrap, topic, group, { STARTED_LOG: started2, WORK_MS: '600000' }))
  await waitFor('a record in flight in the second handler', 30000, inFlight(started2))
  h2.kill('SIGTERM')
  await waitFor('the drain started', 10000, () => h2.logs().some(l => l.msg === 'Shutting down: finishing in-flight records') || 'not yet')
  h2.kill('SIGTERM')
  assert.equal(await waitExit(h2, 10000), 2)
  assert.equal((await committedOffsets(group, topic)).get(0) || -1, -1, 'nothing committed')
})
