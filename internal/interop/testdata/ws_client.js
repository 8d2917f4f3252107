'use strict';
// Node ws peer client for wsnursery's interop tests.
// Usage: node ws_client.js URL SCENARIO; scenarios as in trio_client.py,
// plus "compress": echo, reporting the negotiated extensions (ws offers
// permessage-deflate by default).
const WebSocket = require('ws');
const P = require('./peerlib.js');

const [url, scenario] = process.argv.slice(2);
if (!url || !scenario) {
  console.error('usage: ws_client.js URL SCENARIO');
  process.exit(2);
}

const ws = new WebSocket(url, scenario === 'subprotocol' ? P.OFFERED : [], {
  maxPayload: P.MAX_MESSAGE,
  handshakeTimeout: P.TIMEOUT_MS,
});

ws.on('unexpected-response', (req, res) => {
  const chunks = [];
  res.on('data', (c) => chunks.push(c));
  res.on('end', () => {
    P.emit('rejected', {
      scenario,
      status: res.statusCode,
      header: res.headers[P.REJECT_HEADER.toLowerCase()] || '',
      body: Buffer.concat(chunks).toString('utf8'),
    });
    req.destroy();
    process.exit(0);
  });
});

ws.on('open', () => {
  P.emit('open', { scenario, subprotocol: ws.protocol, ...P.openFields(scenario, ws.extensions) });
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
ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
ws.on('close', (code, reason) => P.emit('closed', { scenario, code, reason: reason.toString('utf8') }));
ws.on('error', (err) => {
  P.emit('error', { scenario, detail: String(err) });
  process.exitCode = 1;
});
