// Package conformance holds no library code: its tests check package wsconn
// against RFC 6455, in both roles, with hand-built frames written by raw TCP
// peers. The cases mirror the sections of the Autobahn TestSuite; their
// results are listed in CONFORMANCE.md at the repository root, which
//
//	go test ./conformance -update-conformance
//
// regenerates. The package also holds go test -fuzz targets for the
// server's frame reader, the Close payload checks and the UTF-8 validation.
package conformance
