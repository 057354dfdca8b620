'use strict'

// Run grape operations through the real grenache-nodejs-link.
//
//   node --require ./loopback.js link_client.js --grape http://127.0.0.1:30001 \
//        [--timeout 3000] [--deadline 30000] '<ops JSON>'
//
// <ops JSON> is an array; each operation is an object or a short array:
//   {"op": "announce", "name": "svc", "port": 5001}        ["announce", "svc", 5001]
//   {"op": "lookup", "name": "svc", "wait_ms": 3000}        ["lookup", "svc"]
//   {"op": "put", "data": {"v": "hello"}}  or {"op": "put", "v": "hello"}   ["put", {"v": "hello"}]
//   {"op": "get", "hash": "<40 hex>" | {"hash": ..., "salt": ...}}          ["get", "<40 hex>"]
//   {"op": "sleep", "ms": 100}
// `wait_ms` makes a lookup poll (every 100 ms, link cache cleared in between) until
// the result is non-empty or wait_ms has passed; without it a lookup is one Link call.
//
// Output: one JSON line per operation, in order:
//   {"index": 0, "op": "announce", "args": [...], "result": 1, "ms": 3}
//   {"index": 1, "op": "lookup", "args": [...], "error": {"message": "ERR_GRAPE_LOOKUP_EMPTY", "code": null}, "ms": 4}
// Note that the Link reports grape error strings (HTTP 200) as *results*, e.g.
// "result": "ERR_GRAPE_SERVICE_PORT"; only transport failures, non-2xx replies,
// empty lookups and timeouts are errors. Exit code 1 if any operation errored.

const Link = require('grenache-nodejs-link')
const {
  emit, errorInfo, exit, parseCli, parseInteger, parseJson, safetyNet, sleep, usageError
} = require('./common')

const USAGE = "link_client.js --grape URL [--timeout MS] [--deadline MS] '<ops JSON array>'"

function normalise (raw, index) {
  if (Array.isArray(raw)) {
    const [op, a, b] = raw
    switch (op) {
      case 'announce': return { op, name: a, port: b }
      case 'lookup': return { op, name: a }
      case 'put': return { op, data: a }
      case 'get': return { op, hash: a }
      case 'sleep': return { op, ms: a }
      default: usageError(`operation ${index}: unknown op ${JSON.stringify(op)}`, USAGE)
    }
  }
  if (raw === null || typeof raw !== 'object') usageError(`operation ${index} must be an object or array`, USAGE)
  if (raw.op === 'put' && raw.data === undefined) {
    const { op, ...data } = raw
    return { op, data }
  }
  if (!['announce', 'lookup', 'put', 'get', 'sleep'].includes(raw.op)) {
    usageError(`operation ${index}: unknown op ${JSON.stringify(raw.op)}`, USAGE)
  }
  return raw
}

function call (fn) {
  return new Promise((resolve) => {
    fn((err, res) => resolve(err ? { error: errorInfo(err) } : { result: res === undefined ? null : res }))
  })
}

async function runOne (link, op, timeout) {
  switch (op.op) {
    case 'announce':
      return { args: [op.name, op.port], ...await call((cb) => link.announce(op.name, op.port, { timeout }, cb)) }
    case 'lookup': {
      const waitMs = op.wait_ms || 0
      const deadline = Date.now() + waitMs
      let out
      for (let attempt = 0; attempt < 10000; attempt++) {
        out = await call((cb) => link.lookup(op.name, { timeout }, cb))
        const found = Array.isArray(out.result) && out.result.length > 0
        if (found || Date.now() + 100 > deadline) break
        link.cache.lookup.clear()
        await sleep(100)
      }
      return { args: [op.name], ...out }
    }
    case 'put':
      return { args: [op.data], ...await call((cb) => link.put(op.data, cb)) }
    case 'get':
      return { args: [op.hash], ...await call((cb) => link.get(op.hash, cb)) }
    case 'sleep':
      await sleep(op.ms || 0)
      return { args: [op.ms], result: null }
  }
}

async function main () {
  const { values, positionals } = parseCli({
    grape: { type: 'string' },
    timeout: { type: 'string', default: '3000' },
    deadline: { type: 'string', default: '30000' }
  }, USAGE)
  if (!values.grape) usageError('--grape is required', USAGE)
  if (positionals.length !== 1) usageError('exactly one ops JSON argument is required', USAGE)
  const timeout = parseInteger(values.timeout, '--timeout', USAGE, { min: 1 })
  safetyNet(parseInteger(values.deadline, '--deadline', USAGE, { min: 1 }), 'link_client')

  const rawOps = parseJson(positionals[0], 'ops', USAGE)
  if (!Array.isArray(rawOps)) usageError('ops must be a JSON array', USAGE)
  const ops = rawOps.map(normalise)

  // requestTimeout bounds every grape HTTP call (node-fetch timeout + sweeper).
  const link = new Link({ grape: values.grape, requestTimeout: timeout, monitorTimeout: 500 })
  link.start()

  let failed = false
  for (const [index, op] of ops.entries()) {
    const started = Date.now()
    const out = await runOne(link, op, timeout)
    if (out.error) failed = true
    emit({ index, op: op.op, ...out, ms: Date.now() - started })
  }

  link.stop()
  exit(failed ? 1 : 0)
}

main().catch((err) => {
  emit({ fatal: errorInfo(err) })
  exit(1)
})
