'use strict'
// Installs this package's dependencies (npm ci) unless node_modules already
// matches package-lock.json. The examples depend on the SDK through a
// file: link, which npm does not install dependencies for; their
// postinstall runs this, so that `npm ci` in an example's folder is all a
// user runs. The stamp is the one internal/testkit.NPMInstall writes.
//
// Without internet, @confluentinc/kafka-javascript builds librdkafka from
// source; CKJS_LINKING=dynamic (set here unless set already) makes it use
// the machine's OpenSSL and zlib instead of downloading their sources.

const { execFileSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')

const dir = path.join(__dirname, '..')
const stamp = path.join(dir, 'node_modules', '.lagscale-lock-sha256')
const want = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, 'package-lock.json'))).digest('hex')
let have = ''
try { have = fs.readFileSync(stamp, 'utf8') } catch { /* no stamp: install */ }
if (have !== want) {
  const npm = process.env.npm_execpath ? [process.execPath, [process.env.npm_execpath]] : ['npm', []]
  // The example's npm run sets variables naming its own folder as the
  // project; the nested npm ci must find sdk/node's instead.
  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_package_|npm_lifecycle_)/.test(k) || ['npm_config_local_prefix', 'npm_config_prefix', 'INIT_CWD'].includes(k)) continue
    env[k] = v
  }
  env.CKJS_LINKING = env.CKJS_LINKING || 'dynamic'
  execFileSync(npm[0], [...npm[1], 'ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'inherit', env })
  fs.writeFileSync(stamp, want)
}
