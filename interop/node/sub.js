'use strict'

// Subscriber built on the real grenache-nodejs-ws PeerSub.
//
//   node --require ./loopback.js sub.js --grape http://127.0.0.1:30001 --service NAME \
//        [--count 1] [--timeout 10000]
//
// Subscribes to NAME (PeerSub looks it up, picks one publisher at random and opens
// ws://ip:port/ws) and prints every message received as {"message": TEXT}
// (binary frames as {"binary": BASE64}). Also prints {"connected": true} and
// {"disconnected": true}; PeerSub never reconnects. If the lookup fails (e.g.
// ERR_GRAPE_LOOKUP_EMPTY) it prints {"lookup_error": {...}} and subscribes again
// after 200 ms while time is left. Exits 0 after --count messages, or 1 with
// {"error": {...}, "received": k} after --timeout ms.

const Link = require('grenache-nodejs-link')
const { PeerSub } = require('grenache-nodejs-ws')
const { emit, errorInfo, exit, parseCli, parseInteger, safetyNet, usageError } = require('./common')

const USAGE = 'sub.js --grape URL --service NAME [--count N] [--timeout MS]'

function main () {
  const { values, positionals } = parseCli({
    grape: { type: 'string' },
    service: { type: 'string' },
    count: { type: 'string', default: '1' },
    timeout: { type: 'string', default: '10000' }
  }, USAGE)
  if (!values.grape || !values.service) usageError('--grape and --service are required', USAGE)
  if (positionals.length) usageError(`unexpected arguments: ${positionals.join(' ')}`, USAGE)
  const count = parseInteger(values.count, '--count', USAGE, { min: 1 })
  const timeout = parseInteger(values.timeout, '--timeout', USAGE, { min: 1 })
  safetyNet(timeout + 5000, 'sub.js')
  const deadline = Date.now() + timeout

  const link = new Link({ grape: values.grape, requestTimeout: Math.min(timeout, 3000) })
  link.start()
  const peer = new PeerSub(link, {})
  peer.init()

  let received = 0
  let finished = false
  const finish = (code, extra) => {
    if (finished) return
    finished = true
    if (extra) emit(extra)
    peer.stop()
    link.stop()
    exit(code)
  }

  const timer = setTimeout(() => finish(1, {
    error: { message: `timeout: ${received} of ${count} messages after ${timeout} ms`, code: null },
    received
  }), timeout)

  peer.on('connected', () => emit({ connected: true }))
  peer.on('disconnected', () => emit({ disconnected: true }))
  peer.on('message', (data) => {
    if (finished) return
    emit(typeof data === 'string' ? { message: data } : { binary: Buffer.from(data).toString('base64') })
    received++
    if (received >= count) {
      clearTimeout(timer)
      finish(0, null)
    }
  })
  peer.on('error', (err) => {
    emit({ lookup_error: errorInfo(err) })
    if (finished || Date.now() + 200 >= deadline) return
    link.cache.lookup.clear()
    setTimeout(() => { if (!finished) peer.sub(values.service, { timeout }) }, 200)
  })

  peer.sub(values.service, { timeout })
}

try {
  main()
} catch (err) {
  emit({ fatal: errorInfo(err) })
  exit(1)
}
