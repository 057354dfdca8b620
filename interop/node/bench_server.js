'use strict'

// Echo server for benchmarks/grenache_rpc.py: the real grenache-nodejs-http
// PeerRPCServer answering every payload with itself, announced as --service.
//
//   node --require ./loopback.js bench_server.js --grape URL --service NAME
//
// Prints {"ready": true, "port": N} once announced; stops on SIGTERM.

const Link = require('grenache-nodejs-link')
const { PeerRPCServer } = require('grenache-nodejs-http')
const { emit, freePort, parseCli, safetyNet } = require('./common')

const { values } = parseCli({ grape: { type: 'string' }, service: { type: 'string' } },
  'bench_server.js --grape URL --service NAME')
safetyNet(600000, 'bench_server.js')

async function main () {
  const link = new Link({ grape: values.grape, requestTimeout: 3000 })
  link.start()
  const peer = new PeerRPCServer(link, { timeout: 300000 })
  peer.init()
  const port = await freePort()
  const service = peer.transport('server')
  service.listen(port)
  service.on('request', (rid, key, payload, handler) => handler.reply(null, payload))
  link.announce(values.service, port, {}, (err) => {
    if (err) throw err
    emit({ ready: true, port })
  })
  process.on('SIGTERM', () => { peer.stop(); link.stop(); process.exit(0) })
}

main()
