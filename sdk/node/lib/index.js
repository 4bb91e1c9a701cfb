'use strict'
// @lagscale/handler: the lagscale handler contract for Node.js. See
// README.md and index.d.ts.

const { run, Handler, Headers, EXIT_FORCED, DEFAULTS, DEFAULT_HTTP_ADDR } = require('./handler')
const { Env, ConfigError, configFromEnv, connectionFromEnv } = require('./config')

// Kafka is @confluentinc/kafka-javascript as the SDK installs it, so that a
// program producing next to its handler uses the same client and build.
const Kafka = require('@confluentinc/kafka-javascript')

module.exports = { run, Handler, Headers, Env, ConfigError, configFromEnv, connectionFromEnv, Kafka, EXIT_FORCED, DEFAULTS, DEFAULT_HTTP_ADDR }
