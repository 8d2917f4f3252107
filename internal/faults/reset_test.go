package faults_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// TestReset: a connection reset (RST) reaches both sides as a
// *wsconn.ConnectionClosedError with code 1006, promptly, after every
// message sent before it arrived exactly once.
func TestReset(t *testing.T) {
	const messages = 50
	addr, serverDone := startEchoServer(t)
	proxy := startProxy(t, addr, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	var conn *wsconn.Conn
	err := wsconn.Open(ctx, "ws://"+proxy.Addr()+"/", nil, func(ctx context.Context, c *wsconn.Conn) error {
		conn = c
		if err := roundTrips(ctx, c, messages); err != nil {
			return err
		}
		start = time.Now()
		proxy.Reset()
		if _, err := c.Receive(ctx); closed1006(err) != nil {
			return fmt.Errorf("Receive after the reset: %w", closed1006(err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			return errors.New("Open's context not cancelled after the reset")
		}
		if err := closed1006(context.Cause(ctx)); err != nil {
			return fmt.Errorf("cause of Open's context: %w", err)
		}
		if err := c.SendBinary(context.Background(), message(messages)); closed1006(err) != nil {
			return fmt.Errorf("Send after the reset: %w", closed1006(err))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if r, _ := conn.CloseReason(); r.Code != wsconn.StatusAbnormalClosure {
		t.Errorf("client CloseReason %v, want 1006", r)
	}
	t.Logf("client saw the reset after %v", time.Since(start).Round(time.Microsecond))

	r := waitResult(t, serverDone, 5*time.Second)
	if err := closed1006(r.err); err != nil {
		t.Errorf("server: %v", err)
	}
	if r.n != messages {
		t.Errorf("server echoed %d messages, want %d", r.n, messages)
	}
}
