'use strict';
// Shared constants and output for wsnursery's Node interop peers; the same
// values as peerlib.py, mirrored in the Go tests.

const SUBPROTOCOL = 'wsnursery.v2';
module.exports = {
  SUBPROTOCOL,
  OFFERED: ['chat.unknown', SUBPROTOCOL],
  PEER_PING: Buffer.from('peer-ping\x00\xff', 'latin1'),
  PEER_CLOSE_CODE: 4002,
  PEER_CLOSE_REASON: 'peer-bye \u2713',
  REJECT_STATUS: 403,
  REJECT_HEADER: 'X-Wsnursery-Reason',
  REJECT_HEADER_VALUE: 'peer-says-no',
  REJECT_BODY: 'rejected by peer',
  MAX_MESSAGE: 4 << 20,
  TIMEOUT_MS: 10000,

  // emit prints one observation as a JSON line (stdout is synchronous on a
  // pipe on Linux, so nothing is lost at exit).
  emit(event, fields) {
    process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
  },

  // openFields are extra fields of the "open" event: in scenario
  // "compress", the negotiated extensions as detail "extensions=...".
  openFields(scenario, extensions) {
    return scenario === 'compress' ? { detail: 'extensions=' + extensions } : {};
  },

  // scenarioOf maps a request path to its scenario: "/ping?x" -> "ping".
  scenarioOf(path) {
    return path.split('?')[0].replace(/^\/+|\/+$/g, '');
  },
};
