package faults_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/internal/faults"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/wsconn"
)

// message returns the binary message with sequence number seq: the number
// in 8 bytes, then deterministic filler of a size that varies with seq.
func message(seq int) []byte {
	b := make([]byte, 8+(seq*997)%8192)
	binary.BigEndian.PutUint64(b, uint64(seq))
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq + i)
	}
	return b
}

// checkMessage reports whether m is message(want), and what it is if not.
func checkMessage(m wsconn.Message, want int) error {
	if m.Type != wsconn.Binary || len(m.Data) < 8 {
		return fmt.Errorf("want message %d, got %v of %d bytes", want, m.Type, len(m.Data))
	}
	got := int(binary.BigEndian.Uint64(m.Data))
	if got != want {
		return fmt.Errorf("want message %d, got message %d (lost or duplicated)", want, got)
	}
	if !bytes.Equal(m.Data, message(want)) {
		return fmt.Errorf("message %d corrupted", want)
	}
	return nil
}

// closed1006 checks that err is a *wsconn.ConnectionClosedError for a lost
// connection.
func closed1006(err error) error {
	var ce *wsconn.ConnectionClosedError
	if !errors.As(err, &ce) {
		return fmt.Errorf("want *wsconn.ConnectionClosedError, got %T: %v", err, err)
	}
	if ce.Reason.Code != wsconn.StatusAbnormalClosure {
		return fmt.Errorf("want code 1006, got %v", ce.Reason)
	}
	return nil
}

// startServer serves h on 127.0.0.1 until t ends and returns its address.
func startServer(t *testing.T, h wsconn.Handler, opts *wsconn.ServerOptions) string {
	t.Helper()
	return wstest.Serve(t, nil, h, opts).Addr
}

// startProxy puts a faults.Proxy in front of addr until t ends.
func startProxy(t *testing.T, addr string, opts *faults.Options) *faults.Proxy {
	t.Helper()
	p, err := faults.Listen(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// echo sends back every message, checking that the n-th is message(n),
// until the connection or ctx ends; it returns how many it echoed and why
// it stopped.
func echo(ctx context.Context, c *wsconn.Conn) (int, error) {
	for n := 0; ; n++ {
		m, err := c.Receive(ctx)
		if err != nil {
			return n, err
		}
		if err := checkMessage(m, n); err != nil {
			return n, err
		}
		if err := c.Send(ctx, m); err != nil {
			return n, err
		}
	}
}

// startEchoServer serves echo on 127.0.0.1 until t ends and returns its
// address and where the handler reports what its echo loop saw.
func startEchoServer(t *testing.T) (addr string, done <-chan result) {
	t.Helper()
	results := make(chan result, 1)
	addr = startServer(t, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		n, err := echo(ctx, c)
		results <- result{n, err}
		return nil
	}, nil)
	return addr, results
}

// roundTrips sends message(0) to message(n-1), each after the echo of the
// one before, and checks every echo.
func roundTrips(ctx context.Context, c *wsconn.Conn, n int) error {
	for seq := range n {
		if err := c.SendBinary(ctx, message(seq)); err != nil {
			return err
		}
		m, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		if err := checkMessage(m, seq); err != nil {
			return err
		}
	}
	return nil
}

// result is what a server handler saw.
type result struct {
	n   int
	err error
}

// waitResult waits up to d for the server handler's result.
func waitResult(t *testing.T, ch <-chan result, d time.Duration) result {
	t.Helper()
	return wstest.Recv(t, wstest.Context(t, d), ch)
}
