'use strict'
// Health and metrics, as pkg/handler's http.go: /healthz, /readyz (ready
// once the member has partitions, not while shutting down) and /metrics.

const http = require('node:http')
const { once } = require('node:events')
const { parseAddr, Env } = require('./config')

// route answers a request for path that needs no I/O: the status code and
// body, or null for /metrics, which the registry renders.
function route (path, ready) {
  if (path === '/healthz') return { status: 200, body: 'ok\n' }
  if (path === '/readyz') return ready ? { status: 200, body: 'ok\n' } : { status: 503, body: 'not ready: not in the consumer group\n' }
  if (path === '/metrics') return null
  return { status: 404, body: 'not found\n' }
}

// Handler method (mixed into Handler.prototype): serveHTTP listens on the
// configured address and resolves with the server, or null when the
// address is empty.
async function serveHTTP () {
  if (!this.cfg.httpAddr) return null
  const { host, port } = parseAddr(this.cfg.httpAddr)
  const server = http.createServer((req, res) => {
    const answer = route((req.url || '').split('?')[0], this.ready)
    if (answer !== null) {
      res.statusCode = answer.status
      res.end(answer.body)
      return
    }
    this.registry.metrics().then(body => {
      res.setHeader('Content-Type', this.registry.contentType)
      res.end(body)
    }, err => { res.statusCode = 500; res.end(String(err)) })
  })
  server.listen(port, host)
  try {
    await once(server, 'listening')
  } catch (err) {
    throw new Error(`@lagscale/handler: listening for health and metrics (${Env.httpAddr}=${this.cfg.httpAddr}): ${err.message}`, { cause: err })
  }
  this.httpAddress = server.address()
  this.log.info({ addr: `${this.httpAddress.address}:${this.httpAddress.port}` }, 'Serving health and metrics')
  return server
}

module.exports = { route, methods: { serveHTTP } }
