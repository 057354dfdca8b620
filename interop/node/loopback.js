'use strict'

// Preload with `node --require ./loopback.js ...`.
//
// The grape CLI, the HTTP/WS transports and the ws library all listen without
// naming an address, which means "every interface". The interop tests must only
// ever be reachable on this machine, so this module patches the two places where
// Node opens a listening endpoint:
//
//   * net.Server.prototype.listen  (http, https, ws servers and plain net servers)
//   * dgram.Socket.prototype.bind  (the grape's UDP DHT socket; also the implicit
//                                   bind dgram performs on the first send())
//
// When the caller gave no address (or an empty/undefined one) the call is rewritten
// to bind the loopback address of the socket's family. Calls that name an address,
// listen on a pipe/unix path, or adopt an existing handle/fd are left unchanged.
// Nothing is printed: stdout belongs to the scripts' JSON lines.
//
// How the tests start grapes (tests/interop/node_harness.py, node_grapes()): from
// this folder, one process per grape, each bootstrapped to the other grapes' DHT ports,
//
//   node --require ./loopback.js --require ./parent_watch.js \
//     node_modules/grenache-grape/bin/grape.js \
//     --dp DP --aph APH --bn 127.0.0.1:OTHER_DP[,127.0.0.1:OTHER_DP2] --dpa 120000
//
// (the package's bin entry "grape" is bin/grape.js; node_modules/.bin/grape links to it).
// --dpa 120000 restores the documented 120 s peer expiry, which the 1.0.0 CLI loses
// when the flag is omitted. Both the UDP DHT socket and the HTTP API then listen on
// 127.0.0.1 only. The harness waits until each API answers and each grape can store
// an announcement (reply >= 1) before a test uses them.

const net = require('net')
const dgram = require('dgram')

const LOOPBACK_V4 = '127.0.0.1'
const LOOPBACK_V6 = '::1'

function missing (value) {
  return value === undefined || value === null || value === ''
}

function isPipeName (value) {
  return typeof value === 'string' && value !== '' && Number.isNaN(Number(value))
}

// ---------------------------------------------------------------- TCP servers

const originalListen = net.Server.prototype.listen

net.Server.prototype.listen = function loopbackListen (...args) {
  const first = args[0]

  // listen(options[, cb])
  if (first !== null && typeof first === 'object') {
    const adoptsHandle = first._handle !== undefined || first.fd !== undefined ||
      first instanceof net.Server || first instanceof net.Socket
    if (adoptsHandle || !missing(first.path) || !missing(first.host)) {
      return originalListen.apply(this, args)
    }
    const options = { ...first, host: LOOPBACK_V4 }
    return originalListen.call(this, options, ...args.slice(1))
  }

  // listen(path[, backlog][, cb]) for unix sockets / named pipes
  if (isPipeName(first)) {
    return originalListen.apply(this, args)
  }

  // listen([port][, host][, backlog][, cb]) and listen(cb)
  const callback = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined
  const positional = callback ? args.slice(0, -1) : args.slice()
  if (typeof first === 'function') positional.length = 0

  const [port, host, backlog] = positional
  if (typeof host === 'string' && host !== '') {
    return originalListen.apply(this, args)
  }

  const options = { port: missing(port) ? 0 : Number(port), host: LOOPBACK_V4 }
  // Node also accepts listen(port, backlog, cb): a number in the host position.
  const backlogValue = typeof host === 'number' ? host : backlog
  if (typeof backlogValue === 'number') options.backlog = backlogValue

  return callback
    ? originalListen.call(this, options, callback)
    : originalListen.call(this, options)
}

// ---------------------------------------------------------------- UDP sockets

const originalBind = dgram.Socket.prototype.bind

dgram.Socket.prototype.bind = function loopbackBind (...args) {
  const loopback = this.type === 'udp6' ? LOOPBACK_V6 : LOOPBACK_V4
  const first = args[0]

  // bind(options[, cb])
  if (first !== null && typeof first === 'object') {
    if (first.fd !== undefined || !missing(first.address)) {
      return originalBind.apply(this, args)
    }
    return originalBind.call(this, { ...first, address: loopback }, ...args.slice(1))
  }

  // bind([port][, address][, cb]) and bind(cb)
  const callback = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined
  const positional = callback ? args.slice(0, -1) : args.slice()
  if (typeof first === 'function') positional.length = 0

  const [port, address] = positional
  if (typeof address === 'string' && address !== '') {
    return originalBind.apply(this, args)
  }

  const options = { port: missing(port) ? 0 : Number(port), address: loopback }
  return callback
    ? originalBind.call(this, options, callback)
    : originalBind.call(this, options)
}
