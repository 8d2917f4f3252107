package wsconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/gorilla/websocket"
)

// Send writes one data message. Messages are written one at a time.
//
// If ctx ends while Send waits for its turn, nothing is sent and the
// connection stays usable. If ctx ends while the message is on the wire, the
// connection is aborted, since a frame cannot be resumed halfway, and the
// error says so. Once closing has started, Send fails with a
// *ConnectionClosedError. Text messages must be valid UTF-8.
func (c *Conn) Send(ctx context.Context, m Message) error {
	switch m.Type {
	case Text:
		if !utf8.Valid(m.Data) {
			return errors.New("failed to send message: text is not valid UTF-8")
		}
	case Binary:
	default:
		return fmt.Errorf("failed to send message: invalid message type %v", m.Type)
	}
	return c.send(ctx, m.Type, m.Data)
}

// SendText sends s as a text message; see Send.
func (c *Conn) SendText(ctx context.Context, s string) error {
	if !utf8.ValidString(s) {
		return errors.New("failed to send message: text is not valid UTF-8")
	}
	// The writer only reads the bytes (it copies them before masking), so
	// the string's memory can be lent without a copy.
	return c.send(ctx, Text, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// SendBinary sends b as a binary message; see Send.
func (c *Conn) SendBinary(ctx context.Context, b []byte) error {
	return c.send(ctx, Binary, b)
}

func (c *Conn) send(ctx context.Context, typ MessageType, data []byte) error {
	if err := c.acquireWrite(ctx, "send message"); err != nil {
		return err
	}
	defer c.releaseWrite()

	watched := ctx.Done() != nil
	if watched {
		c.watch.arm(ctx, c, false)
	}
	err := c.writeMessage(typ, data)
	if watched && c.watch.finish() {
		if err == nil {
			// ctx ended just as the message was completed: it is on the
			// wire, and the connection is fine.
			c.guard.resume()
		} else {
			c.abort(abortedSend)
			return midMessage("send message", ctx.Err())
		}
	}
	if err != nil {
		return c.writeFailed("send message", err)
	}
	c.traceData("websocket message sent", typ, data)
	return nil
}

// acquireWrite takes the turn to write a data message. If ctx ends or
// closing starts first it fails, and nothing has been sent.
func (c *Conn) acquireWrite(ctx context.Context, what string) error {
	select {
	case <-c.closing:
		return c.closedErr()
	default:
	}
	select {
	case c.writeSem <- struct{}{}:
	default:
		select {
		case c.writeSem <- struct{}{}:
		case <-c.closing:
			return c.closedErr()
		case <-ctx.Done():
			return fmt.Errorf("failed to %s: %w", what, ctx.Err())
		}
	}
	if err := ctx.Err(); err != nil {
		<-c.writeSem
		return fmt.Errorf("failed to %s: %w", what, err)
	}
	return nil
}

func (c *Conn) releaseWrite() { <-c.writeSem }

// writeFailed is the error for a data write that failed: the connection is
// closing, or it is aborted now.
func (c *Conn) writeFailed(what string, err error) error {
	if errors.Is(err, websocket.ErrCloseSent) {
		return c.closedErr()
	}
	c.abort(CloseReason{Code: StatusAbnormalClosure})
	return fmt.Errorf("failed to %s: %w: %w", what, c.closedErr(), err)
}

func (c *Conn) writeMessage(typ MessageType, data []byte) error {
	if c.cfg.compress.mode != CompressionDisabled {
		// Per message: below the threshold a message goes out with RSV1 clear.
		c.ws.EnableWriteCompression(c.cfg.compress.compresses(len(data)))
	}
	// On the server gorilla writes any message as one frame with no
	// allocation; on the client it frames by the (pooled) write buffer.
	return c.ws.WriteMessage(int(typ), data)
}

// writeWatch interrupts an in-progress data message when its context ends:
// the one rule for Send and Writer. It lives in the Conn and is used under
// writeSem; it keeps one context.AfterFunc registration for as long as the
// messages use the same context (a handler's or a task's), so a message
// costs no allocation for it.
type writeWatch struct {
	mu      sync.Mutex
	done    <-chan struct{} // Done of the registered context
	stop    func() bool
	writing bool
	abort   bool // abort the connection when fired (a Writer, between writes too)
	fired   bool
}

// arm starts watching a message written under ctx; with abort, the
// connection is aborted as soon as ctx ends (a Writer, whose message may
// wait between Writes), else the write is only interrupted and the writer
// decides (Send: the message may have been completed).
func (w *writeWatch) arm(ctx context.Context, c *Conn, abort bool) {
	d := ctx.Done()
	w.mu.Lock()
	defer w.mu.Unlock()
	if d != w.done {
		if w.stop != nil {
			w.stop()
		}
		w.done = d
		w.stop = context.AfterFunc(ctx, func() { w.interrupt(d, c) })
	}
	w.writing, w.abort, w.fired = true, abort, false
}

func (w *writeWatch) interrupt(d <-chan struct{}, c *Conn) {
	w.mu.Lock()
	fire := w.writing && w.done == d
	abort := fire && w.abort
	if fire {
		w.fired = true
		c.guard.interrupt()
	}
	w.mu.Unlock()
	if abort {
		c.abort(abortedSend)
	}
}

// finish ends a write and reports whether the watch interrupted it.
func (w *writeWatch) finish() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writing = false
	return w.fired
}

// release drops the registration when the connection is closed.
func (w *writeWatch) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stop != nil {
		w.stop()
	}
	w.stop, w.done = nil, nil
}

var abortedSend = CloseReason{Code: StatusAbnormalClosure, Reason: "send interrupted mid-message"}

// midMessage is the error of a data message whose ctx ended (err) while it
// was on the wire: the connection is aborted.
func midMessage(what string, err error) error {
	return fmt.Errorf("failed to %s: %w (connection aborted: a message cannot be resumed halfway)", what, err)
}

// Pong sends an unsolicited pong (a unidirectional heartbeat, RFC 6455
// §5.5.3). payload is at most 125 bytes.
func (c *Conn) Pong(ctx context.Context, payload []byte) error {
	if len(payload) > maxControlPayload {
		return fmt.Errorf("failed to send pong: payload of %d bytes exceeds %d", len(payload), maxControlPayload)
	}
	if err := c.writeControl(ctx, websocket.PongMessage, payload, "pong"); err != nil {
		return err
	}
	c.traceData("websocket pong sent", 0, payload)
	return nil
}

const maxControlPayload = 125

// writeControl writes a ping or pong, bounded by ctx's deadline and the
// disconnect timeout (gorilla waits 1000 hours for a zero deadline).
func (c *Conn) writeControl(ctx context.Context, typ int, payload []byte, what string) error {
	select {
	case <-c.closing:
		return c.closedErr()
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("failed to send %s: %w", what, err)
	}
	deadline := c.controlDeadline(ctx)
	err := c.ws.WriteControl(typ, payload, deadline)
	if err == nil {
		return nil
	}
	select {
	case <-c.closing:
		return c.closedErr()
	default:
	}
	var ne net.Error
	if d, ok := ctx.Deadline(); ok && d.Equal(deadline) && errors.As(err, &ne) && ne.Timeout() {
		// ctx's deadline ended the write a moment before ctx reports it:
		// wait for that moment, so that ctx.Err and context.Cause agree.
		<-ctx.Done()
	}
	if ctx.Err() != nil {
		return fmt.Errorf("failed to send %s: %w", what, ctx.Err())
	}
	return fmt.Errorf("failed to send %s: %w", what, err)
}
