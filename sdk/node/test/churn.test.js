'use strict'
// Churn: 20,000 records on 8 partitions while the group goes from 3 to 5
// members and then to 2, by SIGTERM and one SIGKILL, as a scaler does.
// Everything ends up committed, every record was handled at least once,
// and the duplicates are counted (only the killed member's uncommitted
// work may be handled twice).

const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { startBroker, createTopic, produce, lagging, tmpdir, startHandler, waitExit, waitFor, handledLog, everyRecordHandled, contractEnv, groupType } = require('./helpers')

test(`${groupType} group: 3 -> 5 -> 2 handlers with SIGTERM and one SIGKILL: all committed, none lost, duplicates counted`, { timeout: 600000 }, async (t) => {
  const broker = await startBroker(t)
  // Names of their own: on Apache Kafka one broker serves several runs.
  const topic = `churn-${groupType}-${process.pid}`
  const group = topic
  const parts = 8
  const per = 2500
  const total = parts * per
  await createTopic(broker.bootstrap, topic, parts)
  await produce(broker.bootstrap, topic, parts, per)
  const log = path.join(tmpdir(t), 'handled')
  // 10 ms per record (25 s per partition) keeps every member busy for the whole churn; a short
  // session timeout lets a classic group notice the SIGKILL within seconds. A consumer group's
  // session timeout is the broker's (group.consumer.session.timeout.ms, 45 s by default).
  const env = contractEnv(broker.bootstrap, topic, group, { HANDLED_LOG: log, WORK_MS: '10', ...(groupType === 'classic' ? { SESSION_TIMEOUT_MS: '6000' } : {}), ...(process.env.LAGSCALE_TEST_ASSIGNOR ? { ASSIGNOR: process.env.LAGSCALE_TEST_ASSIGNOR } : {}) })
  const handled = () => handledLog(log).size
  const start = () => startHandler(t, env)

  const began = Date.now()
  const members = [start(), start(), start()]
  await waitFor('a tenth handled by 3 members', 120000, () => handled() >= total / 10 || `${handled()} handled`)
  members.push(start(), start())
  // A cooperative rebalance takes two rounds, and the second waits for every
  // member to give up what it revokes; on a loaded CI machine with four other
  // test binaries running, a minute was not always enough (seen: 4 of 5).
  await waitFor('the 5 members share the partitions', 180000, () => {
    const assigned = members.filter(m => m.logs().some(l => l.msg === 'Partitions assigned'))
    return assigned.length === 5 || `${assigned.length} of 5 got partitions`
  })
  await waitFor('a third handled by 5 members', 120000, () => handled() >= total / 3 || `${handled()} handled`)

  // Down to 2: one member killed without a chance to commit, two drained.
  const killed = members.shift()
  killed.kill('SIGKILL')
  const drained = [members.shift(), members.shift()]
  for (const m of drained) m.kill('SIGTERM')
  for (const m of drained) {
    assert.equal(await waitExit(m), 0, m.stderr.slice(-2000))
    assert.match(m.stdout, /summary handled=\d+ failed=0/)
  }
  await waitExit(killed)
  assert.equal(killed.signal, 'SIGKILL')

  await waitFor('the 2 members committed everything', 300000, async () => {
    const lag = await lagging(broker.bootstrap, group, topic)
    return lag === 0 || `lag ${lag}, ${handled()} distinct handled`
  })
  for (const m of members) m.kill('SIGTERM')
  for (const m of members) assert.equal(await waitExit(m), 0, m.stderr.slice(-2000))

  const dups = everyRecordHandled(handledLog(log), parts, per)
  t.diagnostic(`records=${total} duplicates=${dups}`)
  process.stdout.write(`# churn: groupType=${groupType} assignor=${process.env.LAGSCALE_TEST_ASSIGNOR || 'default'} records=${total} duplicates=${dups} seconds=${((Date.now() - began) / 1000).toFixed(0)}\n`)
})
