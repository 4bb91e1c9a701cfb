'use strict'
// Partition state, as pkg/handler's partition bookkeeping: the queue of a
// partition's records, its done and committed offsets, and the share of a
// batch each partition gets. Everything here is pure: no client, no clock.

// key names a partition in the handler's map of owned partitions.
const key = (topic, partition) => topic + '\u0000' + partition

// At most this many records wait in the partitions' queues.
const QUEUE_CAP = 10000

// A queue whose head passed this many settled records is compacted.
const COMPACT_AFTER = 4096

// newPartition is the state of a partition just assigned: nothing done,
// nothing committed, an empty queue.
function newPartition (topic, partition) {
  return { topic, partition, done: -1, committed: -1, stalled: null, revoking: false, queue: [], head: 0, runMax: 1 }
}

// enqueue appends records to their partition's queue, in offset order, and
// returns how many it queued. Records of partitions not in parts (revoked
// before the poll returned) or stalled are dropped: they stay uncommitted.
function enqueue (parts, msgs) {
  let queued = 0
  let st = null
  for (let i = 0; i < msgs.length; i++) {
    const r = msgs[i]
    if (st === null || st.topic !== r.topic || st.partition !== r.partition) st = parts.get(key(r.topic, r.partition)) || null
    if (st === null) {
      st = { topic: r.topic, partition: r.partition, dropped: true }
      continue
    }
    if (st.dropped || st.stalled) continue
    st.queue.push(r)
    queued++
  }
  return queued
}

// pending is how many records of st's queue are not settled yet.
function pending (st) {
  return st.queue.length - st.head
}

// shareBatch picks the partitions with queued records that are not stalled
// and shares budget records out evenly between them: a partition with fewer
// than its share hands what it does not use to the others. It returns the
// partitions, fewest queued first, and for each the queue index its batch
// ends at. (With a fixed share of budget / partitions, a batch handled fewer
// records than a poll brings whenever the queues were uneven, and the queues
// grew to QUEUE_CAP: records kept that long outlive the young generation, and
// garbage collection became the SDK's largest cost.)
function shareBatch (parts, budget) {
  const live = []
  for (const st of parts) if (pending(st) > 0 && !st.stalled) live.push(st)
  if (live.length > 1) live.sort((a, b) => pending(a) - pending(b))
  const ends = new Array(live.length)
  for (let i = 0; i < live.length; i++) {
    const st = live[i]
    const n = Math.min(pending(st), Math.max(1, Math.floor(budget / (live.length - i))))
    ends[i] = st.head + n
    budget -= n
  }
  return { live, ends }
}

// trim drops the settled records at the head of a partition's queue, and
// the whole queue of a stalled partition. It returns how many unsettled
// records it dropped (those of a stalled partition), which the caller no
// longer counts as queued.
function trim (st) {
  if (st.stalled) {
    const dropped = pending(st)
    st.queue = []
    st.head = 0
    return dropped
  }
  if (st.head === st.queue.length) {
    st.queue = []
    st.head = 0
  } else if (st.head > COMPACT_AFTER) {
    st.queue = st.queue.slice(st.head)
    st.head = 0
  }
  return 0
}

// countStalled counts the stalled partitions.
function countStalled (parts) {
  let n = 0
  for (const st of parts) if (st.stalled) n++
  return n
}

module.exports = { key, QUEUE_CAP, COMPACT_AFTER, newPartition, enqueue, pending, shareBatch, trim, countStalled }
