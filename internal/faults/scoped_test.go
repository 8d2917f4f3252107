package faults_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// TestReceiveAfterLossWithScopedContext: Open cancels its function's
// context when the connection closes; Receive with that context must still
// return the message queued before the loss, then the
// *wsconn.ConnectionClosedError, as Receive's contract says (regression
// test: Receive's select used to pick ctx.Done at random once both were
// ready).
func TestReceiveAfterLossWithScopedContext(t *testing.T) {
	const rounds = 50
	addr := startServer(t, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		if err := c.SendBinary(ctx, message(0)); err != nil {
			return err
		}
		return c.Close(context.WithoutCancel(ctx), 4002, "bye")
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wrong := 0
	for i := range rounds {
		err := wsconn.Open(ctx, "ws://"+addr+"/", nil, func(fctx context.Context, c *wsconn.Conn) error {
			select {
			case <-c.Done(): // the connection is over and fctx cancelled
			case <-ctx.Done():
				return ctx.Err()
			}
			m, err := c.Receive(fctx)
			if err != nil {
				return err
			}
			if err := checkMessage(m, 0); err != nil {
				return err
			}
			_, err = c.Receive(fctx)
			var ce *wsconn.ConnectionClosedError
			if !errors.As(err, &ce) {
				return err
			}
			return nil
		})
		if err != nil {
			wrong++
			if wrong == 1 {
				t.Errorf("round %d: %v", i, err)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d rounds: Receive with the cancelled scope context lost the queued message or the close error", wrong, rounds)
	}
}
