'use strict'
// The options of run() with their defaults, as pkg/handler's options.go.

/** The defaults of run()'s options. */
const DEFAULTS = Object.freeze({
  concurrency: 16,
  maxPollRecords: 1000,
  attempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 10000,
  shutdownTimeoutMs: 25000,
  commitIntervalMs: 1000
})

// positive returns options[name] (v), def when it is undefined, and throws
// a TypeError naming the option when it is not a non-negative integer.
function positive (name, v, def) {
  if (v === undefined) return def
  if (!Number.isInteger(v) || v < 0) throw new TypeError(`options.${name}=${JSON.stringify(v)}: expected a non-negative integer`)
  return v
}

module.exports = { DEFAULTS, positive }
