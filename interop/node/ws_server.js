'use strict'

// WebSocket RPC server built on the real grenache-nodejs-ws PeerRPCServer.
// Same command line, behaviour and output as rpc_server.js:
//
//   node --require ./loopback.js ws_server.js --grape http://127.0.0.1:30001 \
//        --service NAME [--port N] [--id ID] [--announce-interval 1000] [--lifetime 300000] [--quiet]

require('./rpc_common').runServer(require('grenache-nodejs-ws'), 'ws_server.js')
