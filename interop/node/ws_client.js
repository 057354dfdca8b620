'use strict'

// WebSocket RPC client built on the real grenache-nodejs-ws PeerRPCClient.
// Same command line and output as rpc_client.js (--compress has no effect on WS):
//
//   node --require ./loopback.js ws_client.js --grape http://127.0.0.1:30001 \
//        [--timeout 5000] [--count 1] [--retry 1] [--limit 0] request|map SERVICE '<payload JSON>'
//
// grenache-nodejs-ws only enforces --timeout at its 10 s pool sweep, so the default
// --guard here is timeout + 12 s.

require('./rpc_common').runClient(require('grenache-nodejs-ws'), 'ws_client.js', { sweepOnly: true })
