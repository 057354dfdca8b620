'use strict'

// HTTP RPC client built on the real grenache-nodejs-http PeerRPCClient.
//
//   node --require ./loopback.js rpc_client.js --grape http://127.0.0.1:30001 \
//        [--timeout 5000] [--compress] [--count 1] [--retry 1] [--limit 0] \
//        [--guard MS] [--deadline MS] request|map SERVICE '<payload JSON>'
//
// Sends the payload --count times, sequentially, with peer.request (one random
// peer) or peer.map (every looked-up peer), each with an explicit --timeout.
// Prints one line per call:
//   {"i": 0, "mode": "request", "reply": {...}, "ms": 3}
//   {"i": 0, "mode": "map", "error": {"message": "boom: something failed", "code": null}, "ms": 2}
// --guard (default timeout + 2 s) is the script's own bound on a callback that never
// comes. Exit code 1 if any call failed.

require('./rpc_common').runClient(require('grenache-nodejs-http'), 'rpc_client.js', { sweepOnly: false })
