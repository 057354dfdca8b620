'use strict'

// The RPC client and server CLIs, written once and instantiated for both
// transports: rpc_client.js / rpc_server.js use grenache-nodejs-http,
// ws_client.js / ws_server.js use grenache-nodejs-ws. See those files for usage.

const Link = require('grenache-nodejs-link')
const {
  announceUntilStored, emit, errorInfo, exit, freePort, parseCli, parseInteger, parseJson,
  safetyNet, stopOnSignals, usageError, whenListening
} = require('./common')

// ------------------------------------------------------------------ server

function serverUsage (script) {
  return `${script} --grape URL --service NAME [--service NAME2 ...] [--port N] [--id ID] ` +
    '[--announce-interval MS] [--lifetime MS] [--quiet]'
}

async function runServer (Grenache, script) {
  const usage = serverUsage(script)
  const { values, positionals } = parseCli({
    grape: { type: 'string' },
    service: { type: 'string', multiple: true },
    port: { type: 'string', default: '0' },
    id: { type: 'string' },
    'announce-interval': { type: 'string', default: '1000' },
    lifetime: { type: 'string', default: '300000' },
    quiet: { type: 'boolean', default: false }
  }, usage)
  if (positionals.length) usageError(`unexpected arguments: ${positionals.join(' ')}`, usage)
  if (!values.grape) usageError('--grape is required', usage)
  if (!values.service || !values.service.length) usageError('--service is required', usage)
  const interval = parseInteger(values['announce-interval'], '--announce-interval', usage, { min: 50 })
  safetyNet(parseInteger(values.lifetime, '--lifetime', usage, { min: 1 }), script)

  const id = values.id || `${script.replace(/\.js$/, '')}-${process.pid}`
  const port = parseInteger(values.port, '--port', usage) || await freePort()

  const link = new Link({ grape: values.grape, requestTimeout: 3000 })
  link.start()

  const peer = new Grenache.PeerRPCServer(link, { timeout: 300000 })
  peer.init()

  const service = peer.transport('server')
  service.on('request', (rid, key, payload, handler) => {
    if (!values.quiet) emit({ request: { rid, key, payload } })
    if (payload === 'boom') {
      handler.reply(new Error('boom: something failed'))
      return
    }
    handler.reply(null, { echo: payload, from: id })
  })
  service.on('request-error', () => emit({ request_error: true }))

  service.listen(port)
  await whenListening(service.socket, 5000)

  const announced = {}
  for (const name of values.service) {
    const outcome = await announceUntilStored(link, name, port, 10000)
    if (!(Number.isInteger(outcome.result) && outcome.result > 0)) {
      emit({ error: { message: `announce of ${name} failed`, code: null }, announce: outcome })
      peer.stop()
      link.stop()
      return exit(1)
    }
    announced[name] = outcome.result
  }

  // Re-announce every `interval` ms (a manual interval: the Link's own
  // startAnnouncing jitters between 0.5x and 1.5x of its interval).
  const timer = setInterval(() => {
    for (const name of values.service) link.announce(name, port, { timeout: 2000, retry: 1 }, () => {})
  }, interval)

  stopOnSignals(timer, peer, link)

  emit({ ready: true, port, id, services: values.service, announce: announced })
}

// ------------------------------------------------------------------ client

function clientUsage (script) {
  return `${script} --grape URL [--timeout MS] [--compress] [--count N] [--retry N] [--limit N] ` +
    "[--guard MS] [--deadline MS] request|map SERVICE '<payload JSON>'"
}

// grenache-nodejs-ws enforces a request timeout only at its 10 s pool sweep, so
// the script's own guard waits that much longer before giving up on a reply.
const POOL_SWEEP_MS = 10000

async function runClient (Grenache, script, { sweepOnly }) {
  const usage = clientUsage(script)
  const { values, positionals } = parseCli({
    grape: { type: 'string' },
    timeout: { type: 'string', default: '5000' },
    compress: { type: 'boolean', default: false },
    count: { type: 'string', default: '1' },
    retry: { type: 'string', default: '1' },
    limit: { type: 'string', default: '0' },
    guard: { type: 'string' },
    deadline: { type: 'string' }
  }, usage)
  if (!values.grape) usageError('--grape is required', usage)
  if (positionals.length !== 3) usageError('expected: request|map SERVICE PAYLOAD', usage)
  const [mode, name, payloadText] = positionals
  if (mode !== 'request' && mode !== 'map') usageError(`unknown mode ${mode}`, usage)
  const payload = parseJson(payloadText, 'payload', usage)

  const timeout = parseInteger(values.timeout, '--timeout', usage, { min: 1 })
  const count = parseInteger(values.count, '--count', usage, { min: 1 })
  const retry = parseInteger(values.retry, '--retry', usage, { min: 1 })
  const limit = parseInteger(values.limit, '--limit', usage)
  const guard = values.guard === undefined
    ? timeout + (sweepOnly ? POOL_SWEEP_MS : 0) + 2000
    : parseInteger(values.guard, '--guard', usage, { min: 1 })
  const deadline = values.deadline === undefined
    ? count * retry * guard + 10000
    : parseInteger(values.deadline, '--deadline', usage, { min: 1 })
  safetyNet(deadline, script)

  // The Link's requestTimeout bounds the lookup the client does first.
  const link = new Link({ grape: values.grape, requestTimeout: Math.min(timeout, 3000) })
  link.start()
  const peer = new Grenache.PeerRPCClient(link, {})
  peer.init()

  const opts = { timeout, compress: values.compress, retry }
  if (limit) opts.limit = limit

  const once = () => new Promise((resolve) => {
    const timer = setTimeout(
      () => resolve({ error: { message: `HARNESS_GUARD: no callback after ${guard} ms`, code: null } }),
      guard)
    const cb = (err, data) => {
      clearTimeout(timer)
      resolve(err ? { error: errorInfo(err) } : { reply: data === undefined ? null : data })
    }
    if (mode === 'request') peer.request(name, payload, opts, cb)
    else peer.map(name, payload, opts, cb)
  })

  let failed = false
  for (let i = 0; i < count; i++) {
    const started = Date.now()
    const out = await once()
    if (out.error) failed = true
    emit({ i, mode, ...out, ms: Date.now() - started })
  }

  peer.stop()
  link.stop()
  exit(failed ? 1 : 0)
}

function main (fn) {
  fn().catch((err) => {
    emit({ fatal: errorInfo(err) })
    exit(1)
  })
}

module.exports = {
  runClient: (Grenache, script, opts) => main(() => runClient(Grenache, script, opts)),
  runServer: (Grenache, script) => main(() => runServer(Grenache, script))
}
