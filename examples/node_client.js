'use strict'

// A Node.js Grenache client placing and cancelling an order at a peerbook peer, with the
// real grenache-nodejs-link and grenache-nodejs-http packages and nothing peerbook-specific:
// the peer is just a Grenache RPC service that speaks CCXT.
//
//   NODE_PATH=interop/node/node_modules node examples/node_client.js GRAPE_URL PEER_DATA_DIR
//
// PEER_DATA_DIR is the data directory of the peer to act as: its id (peer.json) and API
// credentials (credentials.json) are read from there. Prints one JSON line per step.

const crypto = require('crypto')
const fs = require('fs')
const path = require('path')
const Link = require('grenache-nodejs-link')
const { PeerRPCClient } = require('grenache-nodejs-http')

const [grape, dataDir] = process.argv.slice(2)
const { peer, network } = JSON.parse(fs.readFileSync(path.join(dataDir, 'peer.json')))
const { key, secret } = JSON.parse(fs.readFileSync(path.join(dataDir, 'credentials.json')))

// The canonical JSON a signature covers (contract section 8): keys sorted, no whitespace,
// non-ASCII escaped as \uXXXX, as Python's json.dumps(sort_keys=True, separators=(',', ':')).
function asciiJson (value) {
  return JSON.stringify(value).replace(/[\u0080-\uffff]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
}
function canonical (value) {
  if (Array.isArray(value)) return '[' + value.map(canonical).join(',') + ']'
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort()
    return '{' + keys.map((k) => asciiJson(k) + ':' + canonical(value[k])).join(',') + '}'
  }
  return asciiJson(value)
}

let counter = 0n
function auth (action, args) {
  // Microseconds since the epoch, made unique by a counter, as a decimal string.
  const nonce = (BigInt(Date.now()) * 1000n + (counter++ % 1000n)).toString()
  const signature = crypto.createHmac('sha384', secret)
    .update(`${nonce}:${action}:${canonical(args)}`).digest('hex')
  return { key, nonce, signature }
}

const link = new Link({ grape, requestTimeout: 10000 })
link.start()
const client = new PeerRPCClient(link, {})
client.init()
const service = `peerbook:${network}:peer:${peer}`

function call (action, args, write) {
  const payload = { action, args }
  if (write) payload.auth = auth(action, args)
  return new Promise((resolve, reject) => {
    client.request(service, payload, { timeout: 15000 }, (err, data) => {
      if (err) reject(err)
      else resolve(data)
    })
  })
}

async function main () {
  const clientOrderId = `node-${process.pid}`
  const placed = await call('createOrder',
    ['BTC/USD', 'limit', 'buy', '0.0100', '12345.6', { clientOrderId }], true)
  console.log(JSON.stringify({ step: 'placed', order: placed }))
  const fetched = await call('fetchOrder', [placed.id])
  console.log(JSON.stringify({ step: 'fetched', order: fetched }))
  const cancelled = await call('cancelOrder', [placed.id, 'BTC/USD'], true)
  console.log(JSON.stringify({ step: 'cancelled', order: cancelled }))
  try {
    await call('cancelOrder', [placed.id], true)
  } catch (err) {
    console.log(JSON.stringify({ step: 'refused', error: err.message }))
  }
}

main()
  .catch((err) => { console.log(JSON.stringify({ step: 'failed', error: err.message })); process.exitCode = 1 })
  .finally(() => { client.stop(); link.stop() })
