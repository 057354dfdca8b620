'use strict'

// HTTP RPC server built on the real grenache-nodejs-http PeerRPCServer.
//
//   node --require ./loopback.js rpc_server.js --grape http://127.0.0.1:30001 \
//        --service NAME [--service NAME2] [--port N] [--id ID] \
//        [--announce-interval 1000] [--lifetime 300000] [--quiet]
//
// Listens on --port (a free one when 0 / omitted), announces every service name
// through the Link until the grape stores it, then re-announces every
// --announce-interval ms. Replies to payload P with {"echo": P, "from": ID}; the
// payload "boom" gets the error reply new Error('boom: something failed').
// Prints {"ready": true, "port": N, "id": ..., "services": [...], "announce": {...}}
// once listening and announced, then {"request": {"rid", "key", "payload"}} per
// request (unless --quiet). SIGTERM/SIGINT stop it ({"stopped": true}); it exits
// by itself (code 3) after --lifetime ms.

require('./rpc_common').runServer(require('grenache-nodejs-http'), 'rpc_server.js')
