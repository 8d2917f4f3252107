// Package conformance holds no library code: its tests check package wsconn
// against RFC 6455 and RFC 7692 (permessage-deflate), in both roles, with
// hand-built frames written by raw TCP peers. The cases mirror the sections
// of the Autobahn TestSuite; their results are listed in CONFORMANCE.md at
// the repository root, which
//
//	go test ./conformance -update-conformance
//
// (or WSNURSERY_UPDATE_CONFORMANCE=1) regenerates; a normal full run fails
// when the file does not match its results.
//
// The package also holds go test -fuzz targets, whose seed corpora in
// testdata/fuzz are replayed by every go test run:
//
//   - FuzzServerFrames and FuzzClientFrames feed a connection arbitrary
//     bytes after a valid handshake and compare what wsconn echoes, answers
//     and reports with a reference model of RFC 6455 (model_test.go);
//   - FuzzClosePayload sends Close frames with arbitrary payloads;
//   - FuzzTextUTF8 sends arbitrary bytes as a fragmented text message.
//   - FuzzDeflateMessage sends arbitrary bytes as the payload of a fragmented
//     compressed message (permessage-deflate, RFC 7692) and compares the
//     outcome with inflating them by the RFC.
//
// Fuzz one target at a time, e.g.
//
//	go test -run '^$' -fuzz '^FuzzServerFrames$' -fuzztime 3m -fuzzminimizetime 5s ./conformance
package conformance
