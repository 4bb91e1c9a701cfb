'use strict'
// Rebalances, as pkg/handler's rebalance.go. librdkafka calls the rebalance
// callback while the loop polls; the event waits for the loop, which applies
// it before it handles the records it got, so a partition is never handled
// after it was given up. A revoke also stops the revoked partitions'
// workers at their next record, and the partition's done offset is
// committed before it is unassigned.

const Kafka = require('@confluentinc/kafka-javascript')
const { key, newPartition, pending, countStalled } = require('./partition')

const ERR_ASSIGN = Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS
const ERR_REVOKE = Kafka.CODES.ERRORS.ERR__REVOKE_PARTITIONS

// Handler methods (mixed into Handler.prototype).

// onRebalance is librdkafka's rebalance callback. While the loop runs the
// event waits for it (the loop polls again only after applying it); a
// revoke also stops the revoked partitions' workers at their next record.
function onRebalance (err, assignment) {
  if (!err || (err.code !== ERR_ASSIGN && err.code !== ERR_REVOKE)) {
    this.log.error({ err: err && err.message }, 'Rebalance failed')
    return
  }
  const ev = { assign: err.code === ERR_ASSIGN, assignment, lost: !!(err.code === ERR_REVOKE && this.consumer.assignmentLost()) }
  if (!ev.assign) {
    for (const tp of assignment) {
      const st = this.parts.get(key(tp.topic, tp.partition))
      if (st) st.revoking = true
    }
  }
  this.events.push(ev)
  if (this.closing) this.applyRebalances()
}

// applyRebalances applies the queued rebalance events in order.
function applyRebalances () {
  while (this.events.length > 0) {
    const ev = this.events.shift()
    const tps = ev.assignment.map(tp => ({ topic: tp.topic, partition: tp.partition }))
    try {
      if (ev.assign) {
        for (const tp of tps) this.parts.set(key(tp.topic, tp.partition), newPartition(tp.topic, tp.partition))
        this.assign(tps)
        this.ready = !this.stopping
        if (tps.length > 0) this.log.info({ partitions: tps }, 'Partitions assigned')
      } else {
        if (!ev.lost) this.commit(true, tps)
        this.forget(tps)
        this.unassign(tps)
        if (tps.length > 0) this.log.info({ partitions: tps }, ev.lost ? 'Partitions lost' : 'Partitions revoked')
      }
    } catch (e) {
      // While leaving, the client refuses calls once it is disconnecting;
      // everything was committed before it started.
      if (!this.closing) this.log.error({ err: e.message }, 'Applying a rebalance failed')
    }
    this.m.owned.set(this.parts.size)
  }
}

function assign (tps) {
  if (this.consumer.rebalanceProtocol() === 'EAGER') this.consumer.assign(tps)
  else this.consumer.incrementalAssign(tps)
}

function unassign (tps) {
  if (this.consumer.rebalanceProtocol() === 'EAGER') this.consumer.unassign()
  else this.consumer.incrementalUnassign(tps)
}

// forget drops the state of partitions given up, and resumes the stalled
// ones among them so that they fetch again if they come back.
function forget (tps) {
  const resume = []
  for (const tp of tps) {
    const k = key(tp.topic, tp.partition)
    const st = this.parts.get(k)
    if (!st) continue
    if (st.stalled) resume.push(tp)
    this.queued -= pending(st)
    this.parts.delete(k)
  }
  if (resume.length > 0) {
    try { this.consumer.resume(resume) } catch (e) { this.log.error({ err: e.message }, 'Resuming a stalled partition failed') }
  }
  this.m.stalled.set(countStalled(this.parts.values()))
}

module.exports = { methods: { onRebalance, applyRebalances, assign, unassign, forget } }
