'use strict'
// Commits, as pkg/handler's commit.go: an offset is committed only when its
// record and every record before it on the partition were handled or
// dead-lettered (the partition's done offset), and only when it moved.

const { key } = require('./partition')

// pendingOffsets returns the done offsets of the partitions sts that moved
// since their last commit.
function pendingOffsets (sts) {
  const offsets = []
  for (const st of sts) {
    if (st.done > st.committed) offsets.push({ topic: st.topic, partition: st.partition, offset: st.done })
  }
  return offsets
}

// markCommitted records offsets as committed in parts.
function markCommitted (parts, offsets) {
  for (const o of offsets) {
    const st = parts.get(key(o.topic, o.partition))
    if (st) st.committed = Math.max(st.committed, o.offset)
  }
}

// markFailed forgets the commit of offsets that failed, so that their
// partitions are committed again with the next commit.
function markFailed (parts, offsets) {
  for (const o of offsets || []) {
    const st = parts.get(key(o.topic, o.partition))
    if (st && st.committed <= o.offset) st.committed = -1
  }
}

// Handler methods (mixed into Handler.prototype): the client calls.

// commit commits the done offset of every owned partition (or of only)
// that moved since its last commit; sync waits for the broker.
function commit (sync, only) {
  const sts = only ? only.map(tp => this.parts.get(key(tp.topic, tp.partition))).filter(Boolean) : this.parts.values()
  const offsets = pendingOffsets(sts)
  if (offsets.length === 0) return
  try {
    if (sync) this.consumer.commitSync(offsets)
    else this.consumer.commit(offsets)
    markCommitted(this.parts, offsets)
  } catch (err) {
    this.m.commitErrors.inc()
    this.log.error({ err: err.message }, 'Committing offsets failed')
  }
}

// onCommitted reports asynchronous commits: a failed one is counted and
// its partitions committed again with the next commit.
function onCommitted (err, offsets) {
  if (!err) return
  this.m.commitErrors.inc()
  this.log.error({ err: err.message }, 'Committing offsets failed')
  markFailed(this.parts, offsets)
}

module.exports = { pendingOffsets, markCommitted, markFailed, methods: { commit, onCommitted } }
