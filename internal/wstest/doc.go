// Package wstest holds the helpers the project's tests share, so that each
// is written once: a wsconn server that is shut down (and checked) when the
// test ends, clients that are closed when it ends, an echo handler, bounded
// waits, a loopback TCP peer, and loopback proxies speaking HTTP CONNECT or
// SOCKS5.
//
// It does not import package testing — no non-test file of this repository
// does, which TestNoTestingImport enforces — so the helpers take a [TB], the
// few methods of testing.TB they call. *testing.T, *testing.B and
// *testing.F satisfy it.
//
// Everything listens on and connects to 127.0.0.1 only, and every wait is
// bounded by [Timeout]. The helpers work inside a testing/synctest bubble
// when given an in-memory listener (internal/pipenet) instead of a socket.
package wstest

import "time"

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
	TempDir() string
}

// Timeout bounds every wait in the helpers: for a dial, for a server to stop,
// for a value on a channel.
const Timeout = 20 * time.Second
