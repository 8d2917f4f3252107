package wstest

import (
	"context"
	"errors"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// Context returns a context that ends after d, or after [Timeout] when d is
// zero, and at the latest when the test ends.
func Context(t TB, d time.Duration) context.Context {
	if d == 0 {
		d = Timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Recv returns the next value from ch, failing the test if ctx ends first
// (or [Timeout] passes).
func Recv[T any](t TB, ctx context.Context, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("nothing received before the context ended: %v", context.Cause(ctx))
	case <-timer.C:
		t.Fatalf("nothing received within %v", Timeout)
	}
	panic("unreachable: Fatalf returned")
}

// WantClosed fails the test unless err is a *wsconn.ConnectionClosedError
// (matching wsconn.ErrConnectionClosed) with the given code and, unless
// reason is "*", the given reason. It returns the error's close reason.
func WantClosed(t TB, err error, code wsconn.StatusCode, reason string) wsconn.CloseReason {
	t.Helper()
	var ce *wsconn.ConnectionClosedError
	if !errors.As(err, &ce) || !errors.Is(err, wsconn.ErrConnectionClosed) {
		t.Fatalf("err = %v, want a *wsconn.ConnectionClosedError", err)
	}
	if ce.Reason.Code != code || (reason != "*" && ce.Reason.Reason != reason) {
		t.Fatalf("close reason = %v, want %d %q", ce.Reason, code, reason)
	}
	return ce.Reason
}

// ReceiveClose receives on c, discarding messages, until the connection
// reports its close, and returns the close reason. It fails the test on any
// other error.
func ReceiveClose(t TB, ctx context.Context, c *wsconn.Conn) wsconn.CloseReason {
	t.Helper()
	for {
		_, err := c.Receive(ctx)
		var ce *wsconn.ConnectionClosedError
		switch {
		case errors.As(err, &ce):
			return ce.Reason
		case err != nil:
			t.Fatalf("Receive: %v, want a *wsconn.ConnectionClosedError", err)
		}
	}
}
