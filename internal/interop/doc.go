// Package interop checks wsnursery's connections against independent
// WebSocket implementations running as real processes on the loopback
// interface: trio-websocket, Python websockets, websocket-client, Node ws and
// headless Chromium's own WebSocket object.
//
// The peers are small programs in testdata/, driven by their command line
// (URL and scenario, or nothing for a server), that print what they observed
// as JSON lines on standard output, one [Event] per line. A peer server first
// prints a "listening" event with the port it bound on 127.0.0.1. The tests
// start them with [Start], read their events with [Peer.Next] and stop them
// with [Peer.Stop], which also kills whatever the peer started.
//
// A test whose peer is not installed skips, or fails when the environment
// variable WSNURSERY_REQUIRE_PEERS is "1" (see [Need]).
package interop
