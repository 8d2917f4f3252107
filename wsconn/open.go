package wsconn

import (
	"context"
	"errors"
)

// Open dials url, runs fn with the connection, and closes it (1000) when fn
// returns. fn's ctx is cancelled the moment the connection is closed, with
// the *ConnectionClosedError as its cause, so that every task working on a
// dead connection stops. Open returns fn's error itself when fn fails (but
// an error that only says fn's ctx was cancelled, because the connection
// closed, is replaced by that *ConnectionClosedError); only if fn succeeds
// does it return an error from closing.
//
// The closing handshake is bounded by DisconnectTimeout even when ctx is
// already cancelled; when the peer is known dead (a ping timed out), Open
// drops the connection without waiting for it.
func Open(ctx context.Context, url string, opts *DialOptions, fn func(ctx context.Context, c *Conn) error) error {
	c, err := Dial(ctx, url, opts)
	if err != nil {
		return err
	}
	fnCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c.afterDone(func() { cancel(c.closedErr()) })
	defer func() {
		if v := recover(); v != nil {
			c.Close(context.WithoutCancel(ctx), StatusInternalError, "")
			panic(v)
		}
	}()
	fnErr := fn(fnCtx, c)
	// The closing handshake runs even when ctx is cancelled, bounded by
	// DisconnectTimeout.
	closeErr := c.Close(context.WithoutCancel(ctx), StatusNormalClosure, "")
	var closed *ConnectionClosedError
	if errors.Is(fnErr, context.Canceled) && ctx.Err() == nil && errors.As(context.Cause(fnCtx), &closed) {
		// fn only reports that its ctx was cancelled because the
		// connection closed: say why it closed instead.
		return closed
	}
	if fnErr != nil {
		return fnErr
	}
	return closeErr
}
