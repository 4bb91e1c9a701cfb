'use strict'
// The contract's environment: defaults, and an error naming the variable
// for everything missing or malformed, both from configFromEnv and from a
// handler process, which exits 1 with that error before it connects.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { configFromEnv, ConfigError, Env } = require('../lib')
const { startHandler, waitExit, tmpdir } = require('./helpers')

const good = {
  KAFKA_BOOTSTRAP_SERVERS: 'b1:9092, b2:9093',
  KAFKA_TOPICS: 'orders,payments',
  KAFKA_CONSUMER_GROUP: 'g'
}

test('defaults: PLAINTEXT, latest, classic group, read_committed, :8080', () => {
  const c = configFromEnv(good)
  assert.deepEqual(c.brokers, ['b1:9092', 'b2:9093'])
  assert.deepEqual(c.topics, ['orders', 'payments'])
  assert.equal(c.securityProtocol, 'PLAINTEXT')
  assert.equal(c.autoOffsetReset, 'latest')
  assert.equal(c.groupType, 'classic')
  assert.equal(c.isolationLevel, 'read_committed')
  assert.equal(c.httpAddr, ':8080')
  assert.equal(c.deadLetterTopic, '')
})

test('read_uncommitted, earliest and the consumer group type are accepted', () => {
  const c = configFromEnv({ ...good, KAFKA_ISOLATION_LEVEL: 'READ_UNCOMMITTED', KAFKA_AUTO_OFFSET_RESET: 'EARLIEST', KAFKA_GROUP_TYPE: 'consumer' })
  assert.equal(c.isolationLevel, 'read_uncommitted')
  assert.equal(c.autoOffsetReset, 'earliest')
  assert.equal(c.groupType, 'consumer')
})

test('every missing or malformed variable is named in the error', async (t) => {
  const dir = tmpdir(t)
  const notPEM = path.join(dir, 'ca.txt')
  fs.writeFileSync(notPEM, 'not a certificate')
  const cases = [
    ['no brokers', { KAFKA_BOOTSTRAP_SERVERS: '' }, Env.bootstrapServers, /not set/],
    ['broker without port', { KAFKA_BOOTSTRAP_SERVERS: 'b1' }, Env.bootstrapServers, /host:port/],
    ['broker with a bad port', { KAFKA_BOOTSTRAP_SERVERS: 'b1:x' }, Env.bootstrapServers, /numeric port/],
    ['no topics', { KAFKA_TOPICS: ' , ' }, Env.topics, /not set/],
    ['no group', { KAFKA_CONSUMER_GROUP: '' }, Env.consumerGroup, /not set/],
    ['unknown protocol', { KAFKA_SECURITY_PROTOCOL: 'TLS' }, Env.securityProtocol, /expected one of/],
    ['SASL without mechanism', { KAFKA_SECURITY_PROTOCOL: 'SASL_PLAINTEXT' }, Env.saslMechanism, /not set/],
    ['unknown mechanism', { KAFKA_SECURITY_PROTOCOL: 'SASL_SSL', KAFKA_SASL_MECHANISM: 'GSSAPI' }, Env.saslMechanism, /expected PLAIN/],
    ['SASL without user', { KAFKA_SECURITY_PROTOCOL: 'SASL_PLAINTEXT', KAFKA_SASL_MECHANISM: 'PLAIN', KAFKA_SASL_PASSWORD: 'secret' }, Env.saslUsername, /user name/],
    ['SASL without password', { KAFKA_SECURITY_PROTOCOL: 'SASL_PLAINTEXT', KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: 'u' }, Env.saslPassword, /password/],
    ['certificate without key', { KAFKA_SECURITY_PROTOCOL: 'SSL', KAFKA_TLS_CERT_FILE: notPEM }, Env.tlsKeyFile, /both/],
    ['missing CA file', { KAFKA_SECURITY_PROTOCOL: 'SSL', KAFKA_TLS_CA_FILE: path.join(dir, 'nope.pem') }, Env.tlsCAFile, /ENOENT/],
    ['CA file not PEM', { KAFKA_SECURITY_PROTOCOL: 'SSL', KAFKA_TLS_CA_FILE: notPEM }, Env.tlsCAFile, /PEM/],
    ['insecure not a boolean', { KAFKA_TLS_INSECURE_SKIP_VERIFY: 'maybe' }, Env.tlsInsecure, /true or false/],
    ['unknown reset', { KAFKA_AUTO_OFFSET_RESET: 'none' }, Env.autoOffsetReset, /earliest or latest/],
    ['share groups', { KAFKA_GROUP_TYPE: 'share' }, Env.groupType, /not supported/],
    ['unknown group type', { KAFKA_GROUP_TYPE: 'eager' }, Env.groupType, /classic or consumer/],
    ['unknown isolation', { KAFKA_ISOLATION_LEVEL: 'serializable' }, Env.isolationLevel, /read_committed or read_uncommitted/],
    ['bad listen address', { LAGSCALE_HTTP_ADDR: 'localhost' }, Env.httpAddr, /host:port/]
  ]
  for (const [name, env, variable, detail] of cases) {
    assert.throws(() => configFromEnv({ ...good, ...env }), (err) => {
      assert.ok(err instanceof ConfigError, name)
      assert.equal(err.variable, variable, name)
      assert.ok(err.message.includes(variable), `${name}: ${err.message}`)
      assert.match(err.message, detail, name)
      return true
    }, name)
  }
})

test('the password never appears in an error', () => {
  assert.throws(() => configFromEnv({ ...good, KAFKA_SECURITY_PROTOCOL: 'SASL_PLAINTEXT', KAFKA_SASL_MECHANISM: 'MD5', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'hunter2' }),
    (err) => !err.message.includes('hunter2'))
})

test('a handler process with a bad environment exits 1 naming the variable', async (t) => {
  for (const [env, variable] of [
    [{ KAFKA_TOPICS: 'x', KAFKA_CONSUMER_GROUP: 'g' }, Env.bootstrapServers],
    [{ KAFKA_BOOTSTRAP_SERVERS: '127.0.0.1:1', KAFKA_TOPICS: 'x', KAFKA_CONSUMER_GROUP: 'g', KAFKA_GROUP_TYPE: 'share' }, Env.groupType]
  ]) {
    const clean = { KAFKA_BOOTSTRAP_SERVERS: '', KAFKA_TOPICS: '', KAFKA_CONSUMER_GROUP: '', LAGSCALE_HTTP_ADDR: '127.0.0.1:0', ...env }
    const h = startHandler(t, clean)
    assert.equal(await waitExit(h, 30000), 1)
    assert.match(h.stderr, new RegExp(variable))
  }
})
