'use strict';
// Node ws peer server for wsnursery's interop tests. Same protocol as
// trio_server.py: prints {"event":"listening","port":N}, serves until stdin
// closes; /reject rejects, /ping pings, /close-by-peer closes, anything else
// echoes every message with its type. With --compress, permessage-deflate
// is on (perMessageDeflate: true); /compress reports what was negotiated.
const { WebSocketServer } = require('ws');
const P = require('./peerlib.js');

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: P.MAX_MESSAGE,
  perMessageDeflate: process.argv.slice(2).includes('--compress'),
  handleProtocols: (protocols) => (protocols.has(P.SUBPROTOCOL) ? P.SUBPROTOCOL : false),
  verifyClient: (info, done) => {
    if (P.scenarioOf(info.req.url) !== 'reject') return done(true);
    P.emit('rejected', { scenario: 'reject' });
    done(false, P.REJECT_STATUS, P.REJECT_BODY, { [P.REJECT_HEADER]: P.REJECT_HEADER_VALUE });
  },
});

wss.on('listening', () => P.emit('listening', { port: wss.address().port }));

wss.on('connection', (ws, req) => {
  const scenario = P.scenarioOf(req.url);
  P.emit('open', { scenario, subprotocol: ws.protocol, ...P.openFields(scenario, ws.extensions) });
  ws.on('close', (code, reason) => P.emit('closed', { scenario, code, reason: reason.toString('utf8') }));
  ws.on('error', (err) => P.emit('error', { scenario, detail: String(err) }));
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  if (scenario === 'ping') {
    const timer = setTimeout(() => P.emit('error', { scenario, detail: 'no pong' }), P.TIMEOUT_MS);
    ws.once('pong', (data) => {
      clearTimeout(timer);
      P.emit('pong', { scenario, payload: data.toString('hex') });
      ws.send('pinged');
    });
    ws.ping(P.PEER_PING);
  } else if (scenario === 'close-by-peer') {
    ws.close(P.PEER_CLOSE_CODE, P.PEER_CLOSE_REASON);
  }
});

// Serve until the test closes our stdin.
process.stdin.on('end', () => wss.close(() => process.exit(0)));
process.stdin.resume();
