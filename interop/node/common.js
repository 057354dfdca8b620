'use strict'

// Small helpers shared by the interop CLI scripts in this folder.
//
// Every script prints one JSON object per line on stdout (nothing else goes to
// stdout), reports failures with a non-zero exit code, and installs a global
// safety net so that no script can outlive its time budget.
//
// Exit codes: 0 success, 1 an operation failed, 2 bad command line,
//             3 safety-net timeout (the script ran longer than allowed).

const net = require('net')
const util = require('util')

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function errorInfo (err) {
  if (err === null || err === undefined) return null
  if (!(err instanceof Error)) return { message: String(err), code: null }
  const code = err.code === undefined ? null : err.code
  return { message: err.message, code }
}

// Exit after stdout has been flushed (stdout is a pipe when driven by pytest).
function exit (code) {
  process.stdout.write('', () => process.exit(code))
}

// Print an uncaught exception as a JSON line (exit 1) instead of a bare stack
// trace; e.g. grenache-nodejs-ws 1.0.0 leaves a refused WebSocket connection's
// 'error' event unhandled, which crashes the client process.
function reportCrashes () {
  process.on('uncaughtException', (err) => {
    emit({ fatal: { ...errorInfo(err), uncaught: true } })
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`)
    process.exit(1)
  })
}

// On SIGTERM/SIGINT: stop the announce timer, the peer and the link, report, exit 0.
// onStop runs first (e.g. to end a publishing loop).
function stopOnSignals (timer, peer, link, onStop = () => {}) {
  const stop = (signal) => {
    onStop()
    clearInterval(timer)
    peer.stop()
    link.stop()
    emit({ stopped: true, signal })
    exit(0)
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
}

function safetyNet (ms, what) {
  reportCrashes()
  const timer = setTimeout(() => {
    emit({ fatal: `safety net: ${what} still running after ${ms} ms` })
    process.exit(3)
  }, ms)
  timer.unref()
  return timer
}

// Parse argv with util.parseArgs; on a usage error print it and exit 2.
function parseCli (options, usage) {
  try {
    return util.parseArgs({ options, allowPositionals: true, strict: true })
  } catch (err) {
    process.stderr.write(`${err.message}\nusage: ${usage}\n`)
    process.exit(2)
  }
}

function usageError (message, usage) {
  process.stderr.write(`${message}\nusage: ${usage}\n`)
  process.exit(2)
}

function parseJson (text, what, usage) {
  try {
    return JSON.parse(text)
  } catch (err) {
    usageError(`${what} is not valid JSON: ${err.message}`, usage)
  }
}

function parseInteger (text, what, usage, { min = 0 } = {}) {
  const value = Number(text)
  if (!Number.isInteger(value) || value < min) usageError(`${what} must be an integer >= ${min}`, usage)
  return value
}

// A TCP port that is free on 127.0.0.1 right now (the OS picks it).
function freePort () {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once('error', reject)
    probe.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

// Resolve once `server` (a net.Server, possibly wrapped by ws) is listening.
function whenListening (server, ms) {
  return new Promise((resolve, reject) => {
    if (server.listening) return resolve()
    const timer = setTimeout(() => reject(new Error(`not listening after ${ms} ms`)), ms)
    server.once('listening', () => { clearTimeout(timer); resolve() })
    server.once('error', (err) => { clearTimeout(timer); reject(err) })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Announce `name` on `port` through the link until the grape answers with a
// positive integer (the number of DHT nodes that stored it), bounded by `ms`.
async function announceUntilStored (link, name, port, ms) {
  const deadline = Date.now() + ms
  let last = null
  for (let attempt = 0; attempt < 1000 && Date.now() < deadline; attempt++) {
    last = await new Promise((resolve) => {
      link.announce(name, port, { timeout: 2000 }, (err, res) => {
        resolve(err ? { error: errorInfo(err) } : { result: res })
      })
    })
    if (Number.isInteger(last.result) && last.result > 0) return last
    await sleep(100)
  }
  return last
}

module.exports = {
  announceUntilStored,
  emit,
  errorInfo,
  exit,
  freePort,
  stopOnSignals,
  parseCli,
  parseInteger,
  parseJson,
  reportCrashes,
  safetyNet,
  sleep,
  usageError,
  whenListening
}
