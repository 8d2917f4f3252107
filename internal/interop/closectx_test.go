package interop_test

import (
	"context"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/wsconn"
)

// TestCloseWithHandlerContext: a handler that closes with its own context,
// which the server cancels once the connection is closed, must get nil from
// a closing handshake that completed (regression test: Close's select used
// to pick ctx.Done over c.done at random when both were ready).
func TestCloseWithHandlerContext(t *testing.T) {
	const rounds = 50
	errs := make(chan error, rounds)
	srv := wstest.Serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			errs <- err
			return err
		}
		errs <- c.Close(ctx, goCloseCode, goCloseReason)
		return nil
	}, &wsconn.ServerOptions{DisconnectTimeout: disconnectTimeout})
	ctx := wstest.Context(t, 30*time.Second)

	failed := 0
	for i := range rounds {
		c, err := wsconn.Dial(ctx, srv.URL, dialOptions())
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
