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

	"github.com/gorilla/websocket"
)

// Receive returns the next message from the queue the reader goroutine
// fills. Cancelling ctx only stops this call: no message is lost and the
// connection stays open. Concurrent callers each receive distinct messages.
// Receive discards the rest of a message a Reader is streaming.
//
// After the peer closes or the connection is lost, messages already queued
// are still returned, then a *ConnectionClosedError. After a local Close
// the queue is discarded and Receive fails at once.
func (c *Conn) Receive(ctx context.Context) (Message, error) {
	c.dropStream()
	for {
		in, err := c.next(ctx, "receive message")
		if err != nil || in.s == nil {
			return in.m, err
		}
		// A message longer than streamAhead: the reader goroutine reads it
		// whole and queues it in its place.
		in.s.claim <- false
	}
}

// next returns the next item of the queue; what names the operation in a
// context's error. Where it can, it reads the next message itself instead
// of waiting for the reader goroutine to queue it (direct.go).
func (c *Conn) next(ctx context.Context, what string) (inbound, error) {
	// A ready message or the end of the queue wins over ctx: the contexts
	// of Open and of server handlers are cancelled because the connection
	// closed, and that must not hide what was queued before.
	for {
		if in, err, ok := c.tryNext(); ok {
			return in, err
		}
		d := c.direct
		if d == nil || ctx.Err() != nil || c.noReadAhead.Load() {
			break
		}
		if d.acquire() {
			// Only the role's holder adds to the queue: what is queued now
			// came before what a direct read would return.
			if in, err, ok := c.tryNext(); ok {
				d.release(false)
				return in, err
			}
			m, err, ok := d.receive(ctx)
			if !ok {
				break
			}
			if err != nil {
				return inbound{}, fmt.Errorf("failed to %s: %w", what, err)
			}
			return inbound{m: m}, nil
		}
		in, err, ok := c.waitNext(ctx, what, d.grant)
		d.doneWaiting()
		if ok {
			return in, err
		}
		// The reader goroutine handed the role over: read directly.
	}
	in, err, _ := c.waitNext(ctx, what, nil)
	return in, err
}

// waitNext waits for the next item of the queue; ok is false when grant
// fired first.
func (c *Conn) waitNext(ctx context.Context, what string, grant <-chan struct{}) (in inbound, err error, ok bool) {
	select {
	case in, open := <-c.queue:
		if !open {
			return inbound{}, c.closedErr(), true
		}
		return in, nil, true
	case <-c.dropQueue:
		return inbound{}, c.closedErr(), true
	case <-grant:
		return inbound{}, nil, false
	case <-ctx.Done():
		if in, err, ok := c.tryNext(); ok {
			return in, err, true
		}
		return inbound{}, fmt.Errorf("failed to %s: %w", what, ctx.Err()), true
	}
}

// tryNext is next without waiting; ok is false when it would wait.
func (c *Conn) tryNext() (in inbound, err error, ok bool) {
	select {
	case <-c.dropQueue:
		return inbound{}, c.closedErr(), true
	default:
	}
	select {
	case in, open := <-c.queue:
		if !open {
			return inbound{}, c.closedErr(), true
		}
		return in, nil, true
	default:
		return inbound{}, nil, false
	}
}

// readBufs holds read buffers between messages, so an idle connection keeps
// none and a busy one allocates only the payload it hands out.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledRead is the largest read buffer pooled again.
const maxPooledRead = 256 << 10

// readLoop is the connection's one reader: it must always be running, as
// gorilla runs the ping, pong and close handlers only inside a read.
func (c *Conn) readLoop() {
	defer c.finish()
	d := c.direct
	if d != nil {
		defer d.releaseCtx()
	}
	for {
		if d != nil && !d.take() {
			return
		}
		typ, r, err := c.ws.NextReader()
		if err != nil {
			c.readFailed(err)
			return
		}
		if !c.readOne(MessageType(typ), r) {
			return
		}
		if d != nil {
			d.read++
		}
	}
}

// readOne reads one message and reports whether reading goes on. A message
// that ends within streamAhead bytes is queued whole; a longer one is
// handed on as a stream (stream.go) once Reader has been used, and queued
// whole before.
func (c *Conn) readOne(typ MessageType, r io.Reader) bool {
	in := msgIn{r: r, limit: c.cfg.maxMessageSize, text: typ == Text}
	bp := readBufs.Get().(*[]byte)
	ahead := streamAhead
	if c.noReadAhead.Load() {
		ahead = 0 // NetConn: every message streams, from pooled buffers
	}
	buf, eof, err := in.fill((*bp)[:0], ahead)
	// Until the first Reader, read long messages ahead whole too, as
	// Receive wants them, looking again every streamAhead bytes.
	for err == nil && !eof && !c.streamReads.Load() {
		buf, eof, err = in.fill(buf, len(buf)+streamAhead)
	}
	if err == nil && !eof {
		// The buffer goes with the stream, which pools it again.
		return c.stream(in, typ, bp, buf)
	}
	var data []byte
	if cap(buf) <= maxPooledRead {
		if err == nil {
			data = make([]byte, len(buf))
			copy(data, buf)
		}
		*bp = buf[:0]
		readBufs.Put(bp)
	} else if err == nil {
		// The odd huge buffer is not pooled: hand it out as it is.
		data = buf[:len(buf):len(buf)]
	}
	if err != nil {
		c.readError(err)
		return false
	}
	c.traceData("websocket message received", typ, data)
	return c.deliver(Message{Type: typ, Data: data})
}

// deliver queues a whole message.
func (c *Conn) deliver(m Message) bool {
	select {
	case c.queue <- inbound{m: m}:
	case <-c.dropQueue:
		// Closed locally: nobody will receive it. Keep reading so that
		// the peer's Close frame is seen.
	}
	return true
}

// readError fails the connection for an error reading a message.
func (c *Conn) readError(err error) {
	switch {
	case errors.Is(err, errTooBig):
		c.fail(StatusMessageTooBig, tooBigReason(c.cfg.maxMessageSize))
	case errors.Is(err, errInvalidUTF8):
		c.fail(StatusInvalidFramePayloadData, errInvalidUTF8.Error())
	case c.inflateFailed(err):
		// The frames were well formed; what they carry is not
		// valid deflate data, as with bad UTF-8 in a text message.
		c.fail(StatusInvalidFramePayloadData, "invalid compressed data: "+err.Error())
	default:
		c.readFailed(err)
	}
}

var errTooBig = errors.New("message too big")

func tooBigReason(limit int64) string {
	return "message exceeds the limit of " + strconv.FormatInt(limit, 10) + " bytes"
}

// growBuf doubles a full read buffer, but to no more than limit+1 bytes
// (one more than the limit, to see that it is exceeded); msgIn.fill calls
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
