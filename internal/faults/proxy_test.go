package faults_test

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/internal/faults"
	"github.com/wsnursery/wsnursery/internal/wstest"
)

// rawEcho is a TCP echo server on 127.0.0.1 for proxy tests.
func rawEcho(t *testing.T) string {
	t.Helper()
	return wstest.ServeTCP(t, func(c net.Conn) { io.Copy(c, c) })
}

// dialThrough connects to the proxy and checks that a byte makes the round
// trip.
func dialThrough(t *testing.T, p *faults.Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'a' {
		t.Fatalf("round trip through the proxy: %q, %v", b, err)
	}
	return c
}

// TestProxyBlackhole: after Blackhole nothing arrives, neither data nor FIN
// nor RST, until the proxy is closed.
func TestProxyBlackhole(t *testing.T) {
	p := startProxy(t, rawEcho(t), nil)
	c := dialThrough(t, p)
	p.Blackhole()
	if _, err := c.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through a blackhole: %d bytes, %v; want nothing until the deadline", n, err)
	}
	if p.Links() != 1 {
		t.Errorf("Links() = %d during the blackhole, want 1", p.Links())
	}
	p.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after Close: %v, want EOF", err)
	}
}

// TestProxyReset: Reset reaches the client as a connection reset.
func TestProxyReset(t *testing.T) {
	p := startProxy(t, rawEcho(t), nil)
	c := dialThrough(t, p)
	p.Reset()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after Reset: %v, want ECONNRESET", err)
	}
}
