'use strict'
// Unit tests of the SDK's pure parts: partition state and a batch's shares,
// commit bookkeeping, retry backoff and dead-letter headers, and the health
// endpoints' answers. They need no broker.

const test = require('node:test')
const assert = require('node:assert/strict')
const partition = require('../lib/partition')
const commit = require('../lib/commit')
const retry = require('../lib/retry')
const http = require('../lib/http')

function owned (...tps) {
  const parts = new Map()
  for (const [topic, p] of tps) parts.set(partition.key(topic, p), partition.newPartition(topic, p))
  return parts
}

const rec = (topic, p, offset) => ({ topic, partition: p, offset })

test('enqueue queues records per partition and drops those of partitions not owned or stalled', () => {
  const tests = [
    { name: 'owned', msgs: [rec('a', 0, 5), rec('a', 0, 6), rec('a', 1, 9)], want: { 'a/0': [5, 6], 'a/1': [9] }, queued: 3 },
    { name: 'not owned', msgs: [rec('b', 0, 1), rec('a', 0, 2)], want: { 'a/0': [2], 'a/1': [] }, queued: 1 },
    { name: 'stalled', stall: 'a/1', msgs: [rec('a', 1, 1), rec('a', 0, 2)], want: { 'a/0': [2], 'a/1': [] }, queued: 1 }
  ]
  for (const tt of tests) {
    const parts = owned(['a', 0], ['a', 1])
    if (tt.stall) parts.get(partition.key('a', 1)).stalled = { offset: 0, error: 'x' }
    assert.equal(partition.enqueue(parts, tt.msgs), tt.queued, tt.name)
    for (const [k, offsets] of Object.entries(tt.want)) {
      const [t, p] = k.split('/')
      assert.deepEqual(parts.get(partition.key(t, Number(p))).queue.map(r => r.offset), offsets, `${tt.name}: ${k}`)
    }
  }
})

test('shareBatch shares the budget evenly and hands what a partition does not use to the others', () => {
  const tests = [
    { name: 'even', queued: [10, 10], budget: 10, want: [5, 5] },
    { name: 'a small partition leaves the rest to the others', queued: [1, 100, 100], budget: 9, want: [1, 4, 4] },
    { name: 'fewer records than the budget', queued: [2, 3], budget: 100, want: [2, 3] },
    { name: 'every partition gets at least one', queued: [5, 5, 5], budget: 2, want: [1, 1, 1] },
    { name: 'nothing queued', queued: [0, 0], budget: 10, want: [] }
  ]
  for (const tt of tests) {
    const parts = tt.queued.map((n, i) => {
      const st = partition.newPartition('t', i)
      st.queue = Array.from({ length: n }, (_, o) => rec('t', i, o))
      return st
    })
    const { live, ends } = partition.shareBatch(parts, tt.budget)
    const got = live.map((st, i) => ends[i] - st.head).sort((a, b) => a - b)
    assert.deepEqual(got, [...tt.want].sort((a, b) => a - b), tt.name)
  }
})

test('shareBatch leaves stalled partitions out', () => {
  const a = partition.newPartition('t', 0)
  const b = partition.newPartition('t', 1)
  a.queue = [rec('t', 0, 0)]
  b.queue = [rec('t', 1, 0)]
  b.stalled = { offset: 0, error: 'x' }
  assert.deepEqual(partition.shareBatch([a, b], 10).live, [a])
})

test('trim releases settled records and the queue of a stalled partition', () => {
  const st = partition.newPartition('t', 0)
  st.queue = [1, 2, 3]
  st.head = 3
  assert.equal(partition.trim(st), 0)
  assert.deepEqual([st.queue, st.head], [[], 0])

  st.queue = new Array(partition.COMPACT_AFTER + 2).fill(0)
  st.head = partition.COMPACT_AFTER + 1
  assert.equal(partition.trim(st), 0)
  assert.deepEqual([st.queue.length, st.head], [1, 0])

  st.queue = [1, 2, 3]
  st.head = 1
  st.stalled = { offset: 1, error: 'x' }
  assert.equal(partition.trim(st), 2, 'a stalled partition gives up its 2 unsettled records')
  assert.deepEqual([st.queue, st.head], [[], 0])
})

test('commit: only done offsets that moved are committed, and a failed commit is retried', () => {
  const parts = owned(['a', 0], ['a', 1], ['a', 2])
  const st = k => parts.get(partition.key('a', k))
  st(0).done = 10
  st(1).done = 5
  st(1).committed = 5
  assert.deepEqual(commit.pendingOffsets(parts.values()), [{ topic: 'a', partition: 0, offset: 10 }])

  commit.markCommitted(parts, [{ topic: 'a', partition: 0, offset: 10 }, { topic: 'gone', partition: 0, offset: 1 }])
  assert.equal(st(0).committed, 10)
  assert.deepEqual(commit.pendingOffsets(parts.values()), [])

  commit.markFailed(parts, [{ topic: 'a', partition: 0, offset: 10 }])
  assert.deepEqual(commit.pendingOffsets(parts.values()), [{ topic: 'a', partition: 0, offset: 10 }], 'a failed commit is sent again')

  st(1).committed = 8
  commit.markFailed(parts, [{ topic: 'a', partition: 1, offset: 6 }])
  assert.equal(st(1).committed, 8, 'a later commit that succeeded is kept')
})

test('retry: backoff doubles up to the maximum', () => {
  const tests = [[100, 10000, 200], [6000, 10000, 10000], [10000, 10000, 10000]]
  for (const [b, max, want] of tests) assert.equal(retry.nextBackoff(b, max), want)
})

test('retry: a dead-lettered record keeps its headers and says where it came from', () => {
  const r = { topic: 'orders', partition: 3, offset: 42, headers: [{ trace: 'abc' }, { k: '1' }, { k: '2' }] }
  assert.deepEqual(retry.deadLetterHeaders(r, 5, new Error('boom')), {
    trace: 'abc',
    k: '2',
    [retry.Headers.originalTopic]: 'orders',
    [retry.Headers.originalPartition]: '3',
    [retry.Headers.originalOffset]: '42',
    [retry.Headers.attempts]: '5',
    [retry.Headers.error]: 'boom'
  })
  assert.equal(retry.deadLetterHeaders({ ...r, headers: undefined }, 1, 'not an Error')[retry.Headers.error], 'not an Error')
})

test('retry: what a handler throws is always an error', () => {
  assert.equal(retry.asError(undefined).message, 'undefined')
  assert.equal(retry.asError(null).message, 'null')
  const e = new Error('x')
  assert.equal(retry.asError(e), e)
})

test('http: /healthz, /readyz and unknown paths', () => {
  const tests = [
    ['/healthz', false, 200],
    ['/readyz', true, 200],
    ['/readyz', false, 503],
    ['/nope', true, 404]
  ]
  for (const [path, ready, status] of tests) assert.equal(http.route(path, ready).status, status, `${path} ready=${ready}`)
  assert.equal(http.route('/metrics', true), null, '/metrics is rendered by the registry')
})
