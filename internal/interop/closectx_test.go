package interop_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// TestCloseWithHandlerContext: a handler that closes with its own context,
// which the server cancels once the connection is closed, must get nil from
// a closing handshake that completed (regression test: Close's select used
// to pick ctx.Done over c.done at random when both were ready).
func TestCloseWithHandlerContext(t *testing.T) {
	const rounds = 50
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, rounds)
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			errs <- err
			return err
		}
		errs <- c.Close(ctx, goCloseCode, goCloseReason)
		return nil
	}, &wsconn.ServerOptions{DisconnectTimeout: disconnectTimeout})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	failed := 0
	for i := range rounds {
		c, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String()+"/", dialOptions())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Receive(ctx); err == nil {
			t.Fatal("Receive returned a message; want the server's close")
		}
		<-c.Done()
		select {
		case err := <-errs:
			if err != nil {
				failed++
				if failed == 1 {
					t.Errorf("round %d: Close after a completed closing handshake: %v", i, err)
				}
			}
		case <-ctx.Done():
			t.Fatal("handler did not report")
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d handler Close calls failed", failed, rounds)
	}
}
