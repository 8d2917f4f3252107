package wsconn

import (
	"context"
	"errors"
)

// The scoping rule, written once: Open, Conn.Scope and the Server's handler
// path all end a connection's scope through endScope.

// Scope runs fn with a context derived from ctx that is cancelled, with c's
// *ConnectionClosedError as its cause, the moment c is closed, so that
// every task working on a dead connection stops. When fn returns, Scope
// closes c by the scoping rule (the package documentation has it as a
// table); the first case that applies decides:
//
//   - c has already closed or is closing (fn typically returns c's own
//     *ConnectionClosedError, or the cancellation that c's closing caused):
//     no new Close frame; the code already exchanged stands;
//   - fn panics (or calls runtime.Goexit): 1011 (internal error), and the
//     panic goes on;
//   - ctx has ended: 1001 (going away), whatever fn returned;
//   - fn returns an error: 1011, reason "internal error" (the error itself
//     is not sent);
//   - fn returns nil: 1000 (normal closure).
//
// The closing handshake is bounded by the DisconnectTimeout even when ctx
// has ended, and skipped when the peer is known dead (a ping timed out).
//
// Scope returns fn's error itself, except that an error that only says
// fn's ctx was cancelled because c closed (errors.Is(err, context.Canceled)
// with c's *ConnectionClosedError as the context's cause) is replaced by
// that *ConnectionClosedError. Only when fn returns nil does Scope return
// an error from closing.
//
// Scope is for connections used by one function that owns them: the
// client loops of a reconnecting recipe, a callback runner. Open is Dial
// followed by Scope; a Server handler's connection is scoped by the server.
func (c *Conn) Scope(ctx context.Context, fn func(ctx context.Context) error) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c.cancelOnClose(cancel)
	returned := false
	defer func() {
		if !returned {
			v := recover() // nil after runtime.Goexit
			c.endScope(ctx, sctx, nil, true)
			if v != nil {
				panic(v)
			}
		}
	}()
	fnErr := fn(sctx)
	returned = true
	result, closeErr, _ := c.endScope(ctx, sctx, fnErr, false)
	if fnErr == nil {
		return closeErr
	}
	return result
}

// Open dials url and runs fn with the connection in its scope: it is
// c.Scope(ctx, func(ctx context.Context) error { return fn(ctx, c) })
// after a successful Dial, and returns Dial's error otherwise (fn then
// never runs). See Conn.Scope for fn's ctx, the close code and the result.
func Open(ctx context.Context, url string, opts *DialOptions, fn func(ctx context.Context, c *Conn) error) error {
	c, err := Dial(ctx, url, opts)
	if err != nil {
		return err
	}
	return c.Scope(ctx, func(ctx context.Context) error { return fn(ctx, c) })
}

// cancelOnClose arranges for cancel to be called with c's
// *ConnectionClosedError once c is closed.
func (c *Conn) cancelOnClose(cancel context.CancelCauseFunc) {
	c.afterDone(func() { cancel(c.closedErr()) })
}

// Reasons sent by the rule.
const (
	reasonInternalError = "internal error"
)

// scopeClose is the rule's choice of Close frame for a scope that ended:
// open says c had not started closing (otherwise nothing new is sent, and
// the code returned is only what Close is called with), parentEnded that
// the scope's parent context ended, and err what fn returned.
func scopeClose(open, parentEnded, panicked bool, err error) (StatusCode, string) {
	switch {
	case panicked:
		return StatusInternalError, reasonInternalError
	case !open:
		return StatusNormalClosure, "" // not sent: the code exchanged stands
	case parentEnded:
		return StatusGoingAway, ""
	case err == nil:
		return StatusNormalClosure, ""
	}
	return StatusInternalError, reasonInternalError
}

// endScope ends a scope on c whose fn returned err or panicked: it closes
// c as the rule says (bounded by DisconnectTimeout whatever parent's state)
// and reports
//
//   - result: err itself, or c's *ConnectionClosedError when err only
//     echoes c's closing (errors.Is(err, context.Canceled) with c's close
//     as scoped's cause);
//   - closeErr: what Close returned;
//   - failed: the scope failed — it panicked, or returned an error that is
//     neither c's close (a *ConnectionClosedError after c started closing,
//     or its echo) nor the end of parent (its cancellation or deadline).
func (c *Conn) endScope(parent, scoped context.Context, err error, panicked bool) (result, closeErr error, failed bool) {
	open := c.stateNow() == stateOpen
	parentEnded := parent.Err() != nil
	code, reason := scopeClose(open, parentEnded, panicked, err)
	closeErr = c.Close(context.WithoutCancel(parent), code, reason)

	result = err
	var closed *ConnectionClosedError
	switch {
	case panicked:
		return nil, closeErr, true
	case err == nil:
		return nil, closeErr, false
	case errors.Is(err, context.Canceled) && errors.As(context.Cause(scoped), &closed):
		return closed, closeErr, false
	case !open && errors.As(err, &closed):
		return err, closeErr, false
	case parentEnded && endedByContext(err):
		return err, closeErr, false
	}
	return err, closeErr, true
}

// endedByContext reports whether err says a context was cancelled or its
// deadline passed.
func endedByContext(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
