package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// queued is how many messages the peer sends before its Close frame in the
// scoped-context tests.
const queued = 16

// drainScoped waits for the connection to be closed by the peer, then
// receives with ctx, the handler's or Open's context, which is cancelled by
// now. wsconn's documented contract: the queued messages still come, then a
// *ConnectionClosedError. Each Receive that picks ctx.Done over a ready
// message breaks it, so 16 messages make a racy implementation fail almost
// surely.
func drainScoped(wait context.Context, ctx context.Context, c *wsconn.Conn) error {
	select {
	case <-c.Done():
	case <-wait.Done():
		return fmt.Errorf("the connection was not closed: %w", wait.Err())
	}
	select {
	case <-ctx.Done():
	case <-wait.Done():
		return errors.New("the scoped context was not cancelled when the connection closed")
	}
	for i := range queued {
		m, err := c.Receive(ctx)
		if err != nil {
			return fmt.Errorf("Receive #%d after the peer closed: %w (want the queued message)", i, err)
		}
		if string(m.Data) != "msg "+strconv.Itoa(i) {
			return fmt.Errorf("Receive #%d returned %q", i, m.Data)
		}
	}
	_, err := c.Receive(ctx)
	var ce *wsconn.ConnectionClosedError
	if !errors.As(err, &ce) || ce.Reason.Code != 1000 || ce.Reason.Reason != "bye" {
		return fmt.Errorf("Receive after the queue was drained: %v, want a ConnectionClosedError 1000 \"bye\"", err)
	}
	return nil
}

// sendQueuedThenClose is the raw peer's side: 16 messages, then Close.
func sendQueuedThenClose(p *peer) {
	var fs []frame
	for i := range queued {
		fs = append(fs, textFrame("msg "+strconv.Itoa(i)))
	}
	p.write(append(fs, closeFrame(1000, "bye"))...)
	p.expectClose(closeWant{code: 1000, reason: str("bye")})
	p.finish()
}

func TestReceiveWithHandlerContextAfterPeerClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	srv := wsconn.NewServer(func(hctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(hctx, nil)
		if err != nil {
			result <- err
			return err
		}
		result <- drainScoped(ctx, hctx, c)
		return nil
	}, &wsconn.ServerOptions{MessageQueueSize: queued, DisconnectTimeout: 5 * time.Second})
	sctx, scancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	defer func() {
		scancel()
		awaitCleanup(t, served, "Server.Serve to return")
	}()

	conn, br := dialRaw(t, ctx, ln.Addr().String())
	sendQueuedThenClose(newPeer(t, ctx, conn, br, true))
	select {
	case err := <-result:
		if err != nil {
			t.Error(err)
		}
	case <-ctx.Done():
		t.Fatal("the handler did not finish")
	}
}

func TestReceiveWithOpenContextAfterPeerClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	result := make(chan error, 1)
	go func() {
		result <- wsconn.Open(ctx, "ws://"+ln.Addr().String()+"/", &wsconn.DialOptions{MessageQueueSize: queued, DisconnectTimeout: 5 * time.Second},
			func(fctx context.Context, c *wsconn.Conn) error { return drainScoped(ctx, fctx, c) })
	}()
	conn, br := acceptHandshake(t, ctx, ln)
	writeUpgradeResponse(conn)
	sendQueuedThenClose(newPeer(t, ctx, conn, br, false))
	select {
	case err := <-result:
		if err != nil {
			t.Error(err)
		}
	case <-ctx.Done():
		t.Fatal("Open did not return")
	}
}
