'use strict'
// The handler contract: the environment lagscale injects into a handler
// container. The names are those of pkg/contract (Go), which the operator
// writes; configFromEnv reads them the way pkg/handler's ConfigFromEnv does,
// and its errors name the variable that is missing or malformed.

const fs = require('node:fs')

/** Environment variable names of the handler contract (pkg/contract). */
const Env = Object.freeze({
  bootstrapServers: 'KAFKA_BOOTSTRAP_SERVERS',
  topics: 'KAFKA_TOPICS',
  consumerGroup: 'KAFKA_CONSUMER_GROUP',
  securityProtocol: 'KAFKA_SECURITY_PROTOCOL',
  saslMechanism: 'KAFKA_SASL_MECHANISM',
  saslUsername: 'KAFKA_SASL_USERNAME',
  saslPassword: 'KAFKA_SASL_PASSWORD',
  tlsCAFile: 'KAFKA_TLS_CA_FILE',
  tlsCertFile: 'KAFKA_TLS_CERT_FILE',
  tlsKeyFile: 'KAFKA_TLS_KEY_FILE',
  tlsInsecure: 'KAFKA_TLS_INSECURE_SKIP_VERIFY',
  autoOffsetReset: 'KAFKA_AUTO_OFFSET_RESET',
  groupType: 'KAFKA_GROUP_TYPE',
  isolationLevel: 'KAFKA_ISOLATION_LEVEL',
  consumer: 'LAGSCALE_CONSUMER',
  deadLetterTopic: 'LAGSCALE_DEAD_LETTER_TOPIC',
  httpAddr: 'LAGSCALE_HTTP_ADDR'
})

/** Where /healthz, /readyz and /metrics listen unless LAGSCALE_HTTP_ADDR says otherwise. */
const DEFAULT_HTTP_ADDR = ':8080'

const PROTOCOLS = ['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL']
const MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']
const RESETS = ['earliest', 'latest']
// share (KIP-932) is part of the contract but has no consumer in this
// client's JavaScript API yet; it gets an error of its own below.
const GROUP_TYPES = ['classic', 'consumer']
const ISOLATION = ['read_committed', 'read_uncommitted']

/** ConfigError is a contract variable that is missing or malformed; `variable` names it. */
class ConfigError extends Error {
  constructor (variable, message) {
    super(message)
    this.name = 'ConfigError'
    this.variable = variable
  }
}

function list (s) {
  return s.split(',').map(p => p.trim()).filter(Boolean)
}

/**
 * configFromEnv reads the contract from env (process.env by default) and
 * validates it. It throws a ConfigError naming the first bad variable; the
 * error never holds a secret.
 */
function configFromEnv (env = process.env) {
  const get = k => (env[k] === undefined ? '' : String(env[k]).trim())
  const cfg = {
    brokers: list(get(Env.bootstrapServers)),
    topics: list(get(Env.topics)),
    group: get(Env.consumerGroup),
    securityProtocol: get(Env.securityProtocol).toUpperCase() || 'PLAINTEXT',
    saslMechanism: get(Env.saslMechanism).toUpperCase(),
    saslUsername: env[Env.saslUsername] || '',
    saslPassword: env[Env.saslPassword] || '',
    tlsCAFile: get(Env.tlsCAFile),
    tlsCertFile: get(Env.tlsCertFile),
    tlsKeyFile: get(Env.tlsKeyFile),
    tlsInsecureSkipVerify: false,
    autoOffsetReset: get(Env.autoOffsetReset).toLowerCase() || 'latest',
    groupType: get(Env.groupType).toLowerCase() || 'classic',
    isolationLevel: get(Env.isolationLevel).toLowerCase() || 'read_committed',
    consumer: get(Env.consumer),
    deadLetterTopic: get(Env.deadLetterTopic),
    httpAddr: env[Env.httpAddr] === undefined ? DEFAULT_HTTP_ADDR : get(Env.httpAddr)
  }
  const insecure = get(Env.tlsInsecure).toLowerCase()
  if (insecure !== '') {
    if (!['true', 'false', '1', '0'].includes(insecure)) {
      throw new ConfigError(Env.tlsInsecure, `${Env.tlsInsecure}=${JSON.stringify(insecure)}: expected true or false`)
    }
    cfg.tlsInsecureSkipVerify = insecure === 'true' || insecure === '1'
  }
  validate(cfg)
  return cfg
}

/** validate checks a config built by hand the way configFromEnv checks the environment. */
function validate (cfg) {
  if (cfg.brokers.length === 0) {
    throw new ConfigError(Env.bootstrapServers, `${Env.bootstrapServers} is not set: expected a comma-separated list of host:port bootstrap servers`)
  }
  for (const b of cfg.brokers) {
    const i = b.lastIndexOf(':')
    const port = b.slice(i + 1)
    if (i <= 0 || i === b.length - 1) {
      throw new ConfigError(Env.bootstrapServers, `${Env.bootstrapServers} contains ${JSON.stringify(b)}: expected host:port`)
    }
    if (!/^\d+$/.test(port) || Number(port) > 65535) {
      throw new ConfigError(Env.bootstrapServers, `${Env.bootstrapServers} contains ${JSON.stringify(b)}: expected a numeric port`)
    }
  }
  validateSecurity(cfg)
  if (cfg.topics.length === 0) {
    throw new ConfigError(Env.topics, `${Env.topics} is not set: expected a comma-separated list of topics`)
  }
  if (!cfg.group) {
    throw new ConfigError(Env.consumerGroup, `${Env.consumerGroup} is not set: expected the consumer group name`)
  }
  if (!RESETS.includes(cfg.autoOffsetReset)) {
    throw new ConfigError(Env.autoOffsetReset, `${Env.autoOffsetReset}=${JSON.stringify(cfg.autoOffsetReset)}: expected earliest or latest`)
  }
  if (cfg.groupType === 'share') {
    throw new ConfigError(Env.groupType, `${Env.groupType}=share: share groups (KIP-932) are not supported by @lagscale/handler yet: expected classic or consumer`)
  }
  if (!GROUP_TYPES.includes(cfg.groupType)) {
    throw new ConfigError(Env.groupType, `${Env.groupType}=${JSON.stringify(cfg.groupType)}: expected classic or consumer (KIP-848)`)
  }
  if (!ISOLATION.includes(cfg.isolationLevel)) {
    throw new ConfigError(Env.isolationLevel, `${Env.isolationLevel}=${JSON.stringify(cfg.isolationLevel)}: expected read_committed or read_uncommitted`)
  }
  if (cfg.httpAddr) parseAddr(cfg.httpAddr)
  return cfg
}

// validateSecurity checks the security protocol, SASL and TLS settings.
function validateSecurity (cfg) {
  if (!PROTOCOLS.includes(cfg.securityProtocol)) {
    throw new ConfigError(Env.securityProtocol, `${Env.securityProtocol}=${JSON.stringify(cfg.securityProtocol)}: expected one of ${PROTOCOLS.join(', ')}`)
  }
  if (cfg.securityProtocol.startsWith('SASL_')) {
    if (!cfg.saslMechanism) {
      throw new ConfigError(Env.saslMechanism, `${Env.saslMechanism} is not set but ${Env.securityProtocol} is ${cfg.securityProtocol}: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`)
    }
    if (!MECHANISMS.includes(cfg.saslMechanism)) {
      throw new ConfigError(Env.saslMechanism, `${Env.saslMechanism}=${JSON.stringify(cfg.saslMechanism)}: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`)
    }
    if (!cfg.saslUsername) {
      throw new ConfigError(Env.saslUsername, `${Env.saslUsername} is not set but ${Env.securityProtocol} is ${cfg.securityProtocol}: expected the SASL user name`)
    }
    if (!cfg.saslPassword) {
      throw new ConfigError(Env.saslPassword, `${Env.saslPassword} is not set but ${Env.securityProtocol} is ${cfg.securityProtocol}: expected the SASL password`)
    }
  }
  if (!cfg.tlsCertFile !== !cfg.tlsKeyFile) {
    throw new ConfigError(cfg.tlsCertFile ? Env.tlsKeyFile : Env.tlsCertFile,
      `only one of ${Env.tlsCertFile} and ${Env.tlsKeyFile} is set: expected both (client certificate and its key) or neither`)
  }
  if (usesTLS(cfg)) {
    for (const [name, file] of [[Env.tlsCAFile, cfg.tlsCAFile], [Env.tlsCertFile, cfg.tlsCertFile], [Env.tlsKeyFile, cfg.tlsKeyFile]]) {
      if (!file) continue
      let pem
      try {
        pem = fs.readFileSync(file, 'utf8')
      } catch (err) {
        throw new ConfigError(name, `reading ${name}: ${err.message}`)
      }
      if (!pem.includes('-----BEGIN ')) {
        throw new ConfigError(name, `${name}=${JSON.stringify(file)}: expected a PEM file`)
      }
    }
  }
}

/**
 * connectionFromEnv reads only what a client needs to reach the cluster
 * (bootstrap servers, security protocol, SASL, TLS) and returns the
 * librdkafka properties for it: for producers and tools that share a
 * handler's environment but join no group.
 */
function connectionFromEnv (env = process.env) {
  const get = k => (env[k] === undefined ? '' : String(env[k]).trim())
  const cfg = {
    brokers: list(get(Env.bootstrapServers)),
    securityProtocol: get(Env.securityProtocol).toUpperCase() || 'PLAINTEXT',
    saslMechanism: get(Env.saslMechanism).toUpperCase(),
    saslUsername: env[Env.saslUsername] || '',
    saslPassword: env[Env.saslPassword] || '',
    tlsCAFile: get(Env.tlsCAFile),
    tlsCertFile: get(Env.tlsCertFile),
    tlsKeyFile: get(Env.tlsKeyFile),
    tlsInsecureSkipVerify: ['true', '1'].includes(get(Env.tlsInsecure).toLowerCase()),
    consumer: get(Env.consumer),
    group: 'producer'
  }
  if (cfg.brokers.length === 0) {
    throw new ConfigError(Env.bootstrapServers, `${Env.bootstrapServers} is not set: expected a comma-separated list of host:port bootstrap servers`)
  }
  validateSecurity(cfg)
  return clientConfig(cfg)
}

function usesTLS (cfg) {
  return cfg.securityProtocol === 'SSL' || cfg.securityProtocol === 'SASL_SSL'
}

/** parseAddr splits a Go-style listen address (":8080", "127.0.0.1:0", "[::1]:9000") into host and port. */
function parseAddr (addr) {
  const i = addr.lastIndexOf(':')
  const port = addr.slice(i + 1)
  if (i < 0 || !/^\d+$/.test(port) || Number(port) > 65535) {
    throw new ConfigError(Env.httpAddr, `${Env.httpAddr}=${JSON.stringify(addr)}: expected host:port or :port`)
  }
  let host = addr.slice(0, i)
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  return { host: host || undefined, port: Number(port) }
}

/**
 * clientConfig returns the librdkafka properties shared by the consumer and
 * the dead-letter producer: brokers, client id, TLS and SASL.
 */
function clientConfig (cfg) {
  const c = {
    'bootstrap.servers': cfg.brokers.join(','),
    'client.id': 'lagscale-handler/' + (cfg.consumer || cfg.group),
    'security.protocol': cfg.securityProtocol.toLowerCase()
  }
  if (usesTLS(cfg)) {
    if (cfg.tlsCAFile) c['ssl.ca.location'] = cfg.tlsCAFile
    if (cfg.tlsCertFile) {
      c['ssl.certificate.location'] = cfg.tlsCertFile
      c['ssl.key.location'] = cfg.tlsKeyFile
    }
    if (cfg.tlsInsecureSkipVerify) {
      c['enable.ssl.certificate.verification'] = false
      c['ssl.endpoint.identification.algorithm'] = 'none'
    }
  }
  if (cfg.securityProtocol.startsWith('SASL_')) {
    c['sasl.mechanisms'] = cfg.saslMechanism
    c['sasl.username'] = cfg.saslUsername
    c['sasl.password'] = cfg.saslPassword
  }
  return c
}

/**
 * requireFeatures fails with a clear error when the installed librdkafka
 * was built without what the configuration needs (a build from source on a
 * machine without OpenSSL's headers has no TLS and no SCRAM).
 */
function requireFeatures (cfg, features) {
  const need = []
  if (usesTLS(cfg)) need.push(['ssl', Env.securityProtocol])
  if (cfg.securityProtocol.startsWith('SASL_')) {
    need.push([cfg.saslMechanism === 'PLAIN' ? 'sasl_plain' : 'sasl_scram', Env.saslMechanism])
  }
  for (const [f, name] of need) {
    if (!features.includes(f)) {
      throw new ConfigError(name, `${name} needs librdkafka's ${f} support, which this build of @confluentinc/kafka-javascript lacks (features: ${features.join(', ')}): reinstall it with OpenSSL's development headers present (apt-get install libssl-dev)`)
    }
  }
}

module.exports = { Env, DEFAULT_HTTP_ADDR, ConfigError, configFromEnv, connectionFromEnv, validate, clientConfig, parseAddr, requireFeatures }
