package wsconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Receive returns the next message from the queue the reader goroutine
// fills. Cancelling ctx only stops this call: no message is lost and the
// connection stays open. Concurrent callers each receive distinct messages.
//
// After the peer closes or the connection is lost, messages already queued
// are still returned, then a *ConnectionClosedError. After a local Close
// the queue is discarded and Receive fails at once.
func (c *Conn) Receive(ctx context.Context) (Message, error) {
	// A ready message or the end of the queue wins over ctx: the contexts
	// of Open and of server handlers are cancelled because the connection
	// closed, and that must not hide what was queued before.
	if m, err, ok := c.tryReceive(); ok {
		return m, err
	}
	select {
	case m, ok := <-c.queue:
		if !ok {
			return Message{}, c.closedErr()
		}
		return m, nil
	case <-c.dropQueue:
		return Message{}, c.closedErr()
	case <-ctx.Done():
		if m, err, ok := c.tryReceive(); ok {
			return m, err
		}
		return Message{}, fmt.Errorf("failed to receive message: %w", ctx.Err())
	}
}

// tryReceive is Receive without waiting; ok is false when it would wait.
func (c *Conn) tryReceive() (m Message, err error, ok bool) {
	select {
	case <-c.dropQueue:
		return Message{}, c.closedErr(), true
	default:
	}
	select {
	case m, open := <-c.queue:
		if !open {
			return Message{}, c.closedErr(), true
		}
		return m, nil, true
	default:
		return Message{}, nil, false
	}
}

// readBufs holds read buffers between messages, so an idle connection keeps
// none and a busy one allocates only the payload it hands out.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readLoop is the connection's one reader: it must always be running, as
// gorilla runs the ping, pong and close handlers only inside a read.
func (c *Conn) readLoop() {
	defer c.finish()
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			c.readFailed(err)
			return
		}
		data, err := c.readMessage(r)
		if err != nil {
			if errors.Is(err, errTooBig) {
				c.fail(StatusMessageTooBig, tooBigReason(c.cfg.maxMessageSize))
			} else if c.cfg.compress.mode != CompressionDisabled && isInflateError(err) {
				// The frames were well formed; what they carry is not
				// valid deflate data, as with bad UTF-8 in a text message.
				c.fail(StatusInvalidFramePayloadData, "invalid compressed data: "+err.Error())
			} else {
				c.readFailed(err)
			}
			return
		}
		if typ == websocket.TextMessage && !utf8.Valid(data) {
			c.fail(StatusInvalidFramePayloadData, "invalid UTF-8 in text message")
			return
		}
		if c.cfg.log != nil {
			c.trace("websocket message received", "type", MessageType(typ).String(), "len", len(data))
		}
		select {
		case c.queue <- Message{Type: MessageType(typ), Data: data}:
		case <-c.dropQueue:
			// Closed locally: nobody will receive it. Keep reading so that
			// the peer's Close frame is seen.
		}
	}
}

var errTooBig = errors.New("message too big")

func tooBigReason(limit int64) string {
	return "message exceeds the limit of " + strconv.FormatInt(limit, 10) + " bytes"
}

// readMessage reads one message, enforcing the size limit (inclusive) as
// bytes arrive so that an oversized message is never buffered whole. For a
// compressed message r inflates, so the limit counts inflated bytes as they
// are produced: the buffer never grows past limit+1 bytes, whatever the
// message would inflate to.
func (c *Conn) readMessage(r io.Reader) ([]byte, error) {
	bp := readBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	limit := c.cfg.maxMessageSize
	defer func() {
		if cap(buf) <= 256<<10 { // do not pool the odd huge buffer
			*bp = buf[:0]
			readBufs.Put(bp)
		}
	}()
	for {
		if len(buf) == cap(buf) {
			buf = growBuf(buf, limit)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if limit >= 0 && int64(len(buf)) > limit {
			return nil, errTooBig
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	out := make([]byte, len(buf))
	copy(out, buf)
	return out, nil
}

// growBuf doubles a full read buffer, but to no more than limit+1 bytes
// (one more than the limit, to see that it is exceeded); readMessage calls
// it only while len(buf) <= limit.
func growBuf(buf []byte, limit int64) []byte {
	n := max(2*cap(buf), 4096)
	if limit >= 0 && int64(n) >= limit {
		n = int(limit + 1)
	}
	grown := make([]byte, len(buf), n)
	copy(grown, buf)
	return grown
}

// readFailed classifies the error that ended the reader.
func (c *Conn) readFailed(err error) {
	var ce *websocket.CloseError
	var bad *guardError
	var closeFrame *peerCloseFrame
	switch {
	case errors.As(err, &bad):
		c.fail(bad.code, bad.reason)
	case errors.As(err, &closeFrame):
		c.handleClose(int(closeFrame.code), closeFrame.reason)
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla's answer to a 64-bit length with the top bit set (we set
		// no read limit); it sends no Close frame for it.
		c.fail(StatusProtocolError, "frame length has the most significant bit set")
	case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure:
		// The peer's Close frame; handleClose recorded and answered it.
	case isConnError(err):
		c.transition(evFail, CloseReason{Code: StatusAbnormalClosure})
	default:
		// gorilla found a framing error and has sent Close 1002.
		c.transition(evFail, CloseReason{Code: StatusProtocolError, Reason: err.Error()})
	}
	c.trace("websocket reader stopped", "err", err.Error())
}

// isConnError reports whether err comes from the transport rather than
// from the peer's frames.
func isConnError(err error) bool {
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
