package wsconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// NetConn wraps c as a net.Conn over messages of type typ, for code that
// speaks net.Conn: tunnels (io.Copy both ways), net/http, TLS, SSH, gRPC.
// Each Write sends one message; Read reads the messages in turn as one
// byte stream (streamed, as Reader does, so a message need not fit in
// memory; MaxMessageSize still bounds each). With typ Text every Write must
// be valid UTF-8 on its own.
//
// ctx bounds every Read and Write; once it ends they fail. Deadlines work
// per call: an expired deadline fails that call with an error whose
// Timeout() is true (errors.Is os.ErrDeadlineExceeded) and does not close
// the WebSocket, and a Read that times out mid-message loses nothing. As
// with Send, a write deadline that expires while a message is on the wire
// aborts the connection; one that expires while the Write waits for its
// turn sends nothing. SetReadDeadline also applies to a Read in progress;
// SetWriteDeadline applies to Writes that start after it.
//
// Read returns io.EOF once the peer has closed with 1000 (normal closure)
// and the messages before have been read. A message of the other type
// closes the connection with 1003 (unsupported data). Close closes the
// WebSocket with 1000. LocalAddr and RemoteAddr are the TCP addresses.
//
// Use NetConn instead of Receive and Reader, not alongside them: from the
// call on, the connection reads no message ahead (each waits at the head of
// the queue until read), so that no message is copied out whole: reading
// allocates no buffer per message, only the small state of its stream (8
// allocations, against 2 for a Receive of a short message).
func NetConn(ctx context.Context, c *Conn, typ MessageType) net.Conn {
	// NetConn reads every message as a stream from pooled buffers: no
	// message is copied out whole, whatever its size.
	c.noReadAhead.Store(true)
	c.streamReads.Store(true)
	nc := &netConn{c: c, ctx: ctx, typ: typ}
	nc.readDL.base = ctx
	nc.readDL.set(time.Time{})
	return nc
}

type netConn struct {
	c   *Conn
	ctx context.Context
	typ MessageType

	readMu sync.Mutex // one Read at a time
	r      *msgReader // the message being read, nil between messages
	readDL deadline

	writeMu sync.Mutex
	writeAt time.Time // the write deadline; zero: none

	closed atomic.Bool // Close was called
}

// deadline is a read deadline as a context: ctx ends with cause
// os.ErrDeadlineExceeded when the deadline passes, or with errDeadlineMoved
// when it is set again, so that a Read in progress takes the new one.
type deadline struct {
	mu     sync.Mutex
	base   context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer // nil without a deadline, or one passed when set
}

var errDeadlineMoved = errors.New("deadline moved")

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel != nil {
		if d.timer != nil {
			d.timer.Stop()
		}
		d.cancel(errDeadlineMoved)
	}
	// Even without a deadline ctx is cancellable, so that a Read in
	// progress sees the next SetReadDeadline.
	ctx, cancel := context.WithCancelCause(d.base)
	d.ctx, d.cancel, d.timer = ctx, cancel, nil
	switch wait := time.Until(t); {
	case t.IsZero():
	case wait > 0:
		d.timer = time.AfterFunc(wait, func() { cancel(os.ErrDeadlineExceeded) })
	default:
		cancel(os.ErrDeadlineExceeded)
	}
}

// stop releases ctx, failing a Read in progress.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.cancel(net.ErrClosed)
}

func (d *deadline) current() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ctx
}

func (nc *netConn) Read(p []byte) (int, error) {
	nc.readMu.Lock()
	defer nc.readMu.Unlock()
	for {
		ctx := nc.readDL.current()
		n, err := nc.read(ctx, p)
		if err == nil {
			return n, nil
		}
		if ctx.Err() != nil {
			switch context.Cause(ctx) {
			case errDeadlineMoved:
				continue
			case os.ErrDeadlineExceeded:
				return n, nc.opError("read", &timeoutError{err})
			}
		}
		return n, nc.readError(err)
	}
}

func (nc *netConn) read(ctx context.Context, p []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err // an expired deadline fails even when data is ready
	}
	for {
		if nc.r == nil {
			r, err := nc.c.nextReader(ctx, nc.ctx, "read")
			if err != nil {
				return 0, err
			}
			if r.typ != nc.typ {
				r.abandon()
				nc.c.Close(context.WithoutCancel(nc.ctx), StatusUnsupportedData, "expected "+nc.typ.String()+" messages")
				return 0, fmt.Errorf("failed to read: a %v message on a %v connection", r.typ, nc.typ)
			}
			nc.r = r
		}
		n, err := nc.r.read(ctx, p, false)
		if err == io.EOF {
			nc.r = nil
			err = nil
		}
		if n == 0 && err == nil && len(p) > 0 {
			continue // an empty message, or the end of one: the next
		}
		return n, err
	}
}

// readError maps the end of the connection to what net.Conn users expect:
// io.EOF when the peer closed normally, net.ErrClosed after Close.
func (nc *netConn) readError(err error) error {
	if nc.closed.Load() {
		return nc.opError("read", net.ErrClosed)
	}
	var closed *ConnectionClosedError
	if errors.As(err, &closed) && closed.Reason.Code == StatusNormalClosure {
		return io.EOF
	}
	return nc.opError("read", err)
}

func (nc *netConn) Write(p []byte) (int, error) {
	nc.writeMu.Lock()
	at := nc.writeAt
	nc.writeMu.Unlock()
	ctx := nc.ctx
	if !at.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadlineCause(ctx, at, os.ErrDeadlineExceeded)
		defer cancel()
	}
	var err error
	if nc.typ == Text {
		err = nc.c.Send(ctx, Message{Type: Text, Data: p})
	} else {
		err = nc.c.SendBinary(ctx, p)
	}
	switch {
	case err == nil:
		return len(p), nil
	case nc.closed.Load():
		err = net.ErrClosed
	case ctx.Err() != nil && context.Cause(ctx) == os.ErrDeadlineExceeded:
		err = &timeoutError{err}
	}
	return 0, nc.opError("write", err)
}

// Close closes the WebSocket with 1000, running the closing handshake
// (bounded by DisconnectTimeout, even when ctx has ended).
func (nc *netConn) Close() error {
	nc.closed.Store(true)
	defer nc.readDL.stop()
	if err := nc.c.Close(context.WithoutCancel(nc.ctx), StatusNormalClosure, ""); err != nil {
		return nc.opError("close", err)
	}
	return nil
}

func (nc *netConn) LocalAddr() net.Addr  { return nc.c.LocalAddr() }
func (nc *netConn) RemoteAddr() net.Addr { return nc.c.RemoteAddr() }

func (nc *netConn) SetDeadline(t time.Time) error {
	nc.SetReadDeadline(t)
	return nc.SetWriteDeadline(t)
}

func (nc *netConn) SetReadDeadline(t time.Time) error {
	nc.readDL.set(t)
	return nil
}

func (nc *netConn) SetWriteDeadline(t time.Time) error {
	nc.writeMu.Lock()
	nc.writeAt = t
	nc.writeMu.Unlock()
	return nil
}

// opError wraps err as net.Conn implementations do: a *net.OpError, whose
// Timeout() is true for an expired deadline.
func (nc *netConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "websocket", Source: nc.c.LocalAddr(), Addr: nc.c.RemoteAddr(), Err: err}
}

// timeoutError is a call's error when its deadline expired: Timeout() is
// true, and it matches os.ErrDeadlineExceeded and what ended the call.
type timeoutError struct{ err error }

func (e *timeoutError) Error() string   { return "i/o timeout: " + e.err.Error() }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Unwrap() []error { return []error{os.ErrDeadlineExceeded, e.err} }
