'use strict'

// Load generator for benchmarks/grenache_rpc.py: the real grenache-nodejs-http
// PeerRPCClient sending to SERVICE through a Link on --grape.
//
//   node --require ./loopback.js rpc_bench.js --grape URL --service NAME \
//        [--sequential 1000] [--requests 5000] [--in-flight 64] [--compress]
//
// First --sequential requests one after another (each round trip timed), then
// --requests requests with --in-flight outstanding at any time. Prints one JSON
// line: {"p50_ms", "p99_ms", "per_s", "errors"}. Every request has a 10 s timeout.

const Link = require('grenache-nodejs-link')
const { PeerRPCClient } = require('grenache-nodejs-http')
const { emit, exit, parseCli, parseInteger, safetyNet } = require('./common')

const usage = 'rpc_bench.js --grape URL --service NAME [--sequential N] [--requests N] ' +
  '[--in-flight N] [--compress]'
const { values } = parseCli({
  grape: { type: 'string' },
  service: { type: 'string' },
  sequential: { type: 'string', default: '1000' },
  requests: { type: 'string', default: '5000' },
  'in-flight': { type: 'string', default: '64' },
  compress: { type: 'boolean', default: false }
}, usage)
safetyNet(300000, 'rpc_bench.js')

const sequential = parseInteger(values.sequential, '--sequential', usage, { min: 1 })
const requests = parseInteger(values.requests, '--requests', usage, { min: 1 })
const inFlight = parseInteger(values['in-flight'], '--in-flight', usage, { min: 1 })
const link = new Link({ grape: values.grape, requestTimeout: 3000 })
link.start()
const peer = new PeerRPCClient(link, {})
peer.init()
const opts = { timeout: 10000, compress: values.compress }
let errors = 0

function once (i) {
  return new Promise((resolve) => {
    peer.request(values.service, { i }, opts, (err) => {
      if (err) errors++
      resolve()
    })
  })
}

function percentile (sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

async function main () {
  for (let i = 0; i < 100; i++) await once(i) // warm up the lookup cache and the pool
  const times = []
  for (let i = 0; i < sequential; i++) {
    const started = process.hrtime.bigint()
    await once(i)
    times.push(Number(process.hrtime.bigint() - started) / 1e6)
  }
  times.sort((a, b) => a - b)
  let next = 0
  const started = process.hrtime.bigint()
  const worker = async () => {
    while (next < requests) {
      next++
      await once(next)
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  emit({ p50_ms: percentile(times, 0.5), p99_ms: percentile(times, 0.99), per_s: requests / seconds, errors })
  peer.stop()
  link.stop()
  exit(0)
}

main()
