'use strict'

// Publisher built on the real grenache-nodejs-ws PeerPub.
//
//   node --require ./loopback.js pub.js --grape http://127.0.0.1:30001 --service NAME \
//        [--port N] [--interval 100] [--wait-subscribers 0] [--cycle] \
//        [--announce-interval 1000] [--lifetime 300000] '<messages JSON array>'
//
// Listens (on a free port when --port is 0 / omitted), announces NAME until the
// grape stores it, re-announces every --announce-interval ms, and prints
// {"ready": true, "port": N, "announce": K}. Once --wait-subscribers subscribers are
// connected it publishes the messages in order, one every --interval ms (strings are
// sent as they are, anything else as its JSON text), printing
// {"published": MESSAGE, "subscribers": n} for each, then {"done": true, "published": k}.
// With --cycle it starts over instead of stopping. Each new subscriber prints
// {"subscriber_connected": n}. Grenache pub/sub has no replay: messages published
// before a subscriber connects are lost to it. SIGTERM/SIGINT stop it; --lifetime
// bounds it (exit code 3).

const Link = require('grenache-nodejs-link')
const { PeerPub } = require('grenache-nodejs-ws')
const {
  announceUntilStored, emit, errorInfo, exit, freePort, parseCli, parseInteger, parseJson,
  safetyNet, sleep, stopOnSignals, usageError, whenListening
} = require('./common')

const USAGE = 'pub.js --grape URL --service NAME [--port N] [--interval MS] [--wait-subscribers N] ' +
  "[--cycle] [--announce-interval MS] [--lifetime MS] '<messages JSON array>'"

async function main () {
  const { values, positionals } = parseCli({
    grape: { type: 'string' },
    service: { type: 'string' },
    port: { type: 'string', default: '0' },
    interval: { type: 'string', default: '100' },
    'wait-subscribers': { type: 'string', default: '0' },
    cycle: { type: 'boolean', default: false },
    'announce-interval': { type: 'string', default: '1000' },
    lifetime: { type: 'string', default: '300000' }
  }, USAGE)
  if (!values.grape || !values.service) usageError('--grape and --service are required', USAGE)
  if (positionals.length !== 1) usageError('exactly one messages JSON argument is required', USAGE)
  const messages = parseJson(positionals[0], 'messages', USAGE)
  if (!Array.isArray(messages)) usageError('messages must be a JSON array', USAGE)
  const interval = parseInteger(values.interval, '--interval', USAGE, { min: 1 })
  const waitSubscribers = parseInteger(values['wait-subscribers'], '--wait-subscribers', USAGE)
  const announceInterval = parseInteger(values['announce-interval'], '--announce-interval', USAGE, { min: 50 })
  const lifetime = parseInteger(values.lifetime, '--lifetime', USAGE, { min: 1 })
  safetyNet(lifetime, 'pub.js')

  const name = values.service
  const port = parseInteger(values.port, '--port', USAGE) || await freePort()

  const link = new Link({ grape: values.grape, requestTimeout: 3000 })
  link.start()
  const peer = new PeerPub(link, {})
  peer.init()

  const service = peer.transport('server')
  service.listen(port)
  await whenListening(service.socket, 5000)

  let subscribers = 0
  service.socket.on('connection', (socket) => {
    subscribers++
    emit({ subscriber_connected: subscribers })
    socket.on('close', () => { subscribers--; emit({ subscriber_disconnected: subscribers }) })
  })

  const outcome = await announceUntilStored(link, name, port, 10000)
  if (!(Number.isInteger(outcome.result) && outcome.result > 0)) {
    emit({ error: { message: `announce of ${name} failed`, code: null }, announce: outcome })
    peer.stop()
    link.stop()
    return exit(1)
  }
  const announcer = setInterval(() => link.announce(name, port, { timeout: 2000, retry: 1 }, () => {}), announceInterval)

  let stopping = false
  stopOnSignals(announcer, peer, link, () => { stopping = true })

  emit({ ready: true, port, service: name, announce: outcome.result })

  // Wait for subscribers; bounded by --lifetime through the safety net.
  while (!stopping && subscribers < waitSubscribers) await sleep(20)

  let published = 0
  do {
    for (const message of messages) {
      if (stopping) return
      service.pub(typeof message === 'string' ? message : JSON.stringify(message))
      published++
      emit({ published: message, subscribers })
      await sleep(interval)
    }
  } while (values.cycle && messages.length && !stopping)
  emit({ done: true, published })
}

main().catch((err) => {
  emit({ fatal: errorInfo(err) })
  exit(1)
})
