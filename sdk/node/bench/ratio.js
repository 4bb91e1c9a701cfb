'use strict'
// Compares the SDK with a bare loop on the same client: starts kfake
// (LAGSCALE_KFAKE) or uses LAGSCALE_TEST_BOOTSTRAP, produces RECORDS
// records of VALUE bytes on 8 partitions, then runs bench.js sdk and bare
// alternately, COUNT times each, every run in a fresh process and group,
// and prints the median records/s of each and their ratio.
//
//	LAGSCALE_KFAKE=bin/kfake node bench/ratio.js [RECORDS=200000] [COUNT=7] [VALUE=256]

const { execFileSync } = require('node:child_process')
const path = require('node:path')
const { startBroker, createTopic, produce } = require('../test/helpers')

const records = Number(process.argv[2] || 200000)
const count = Number(process.argv[3] || 7)
const value = Number(process.argv[4] || 256)
const parts = 8

function median (v) {
  const s = [...v].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function main () {
  const broker = await startBroker()
  try {
    const topic = `bench-${value}B`
    await createTopic(broker.bootstrap, topic, parts)
    await produce(broker.bootstrap, topic, parts, Math.ceil(records / parts), { valueSize: value })
    const rates = { sdk: [], bare: [] }
    for (let i = 0; i < count; i++) {
      for (const mode of ['sdk', 'bare']) {
        const out = execFileSync(process.execPath, [path.join(__dirname, 'bench.js'), mode, broker.bootstrap, topic, String(records)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
        const m = /records\/s (\d+)/.exec(out)
        if (!m) throw new Error(`bench.js ${mode} printed no records/s: ${out}`)
        rates[mode].push(Number(m[1]))
      }
    }
    const s = median(rates.sdk)
    const b = median(rates.bare)
    console.log(`runs: sdk ${rates.sdk.join(' ')}; bare ${rates.bare.join(' ')}`)
    console.log(`${'value'.padEnd(8)} ${'sdk records/s'.padStart(14)} ${'bare records/s'.padStart(15)} ${'sdk/bare'.padStart(9)}`)
    console.log(`${(value + 'B').padEnd(8)} ${s.toFixed(0).padStart(14)} ${b.toFixed(0).padStart(15)} ${(s / b).toFixed(3).padStart(9)}`)
  } finally {
    broker.stop()
  }
}

main().catch(err => { console.error(err); process.exit(1) })
