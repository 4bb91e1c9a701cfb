'use strict'
// @lagscale/handler: the lagscale handler contract for Node.js. See
// README.md and index.d.ts.

const { run, Handler, Headers, EXIT_FORCED, DEFAULTS, DEFAULT_HTTP_ADDR } = require('./handler')
const { Env, ConfigError, configFromEnv } = require('./config')

module.exports = { run, Handler, Headers, Env, ConfigError, configFromEnv, EXIT_FORCED, DEFAULTS, DEFAULT_HTTP_ADDR }
