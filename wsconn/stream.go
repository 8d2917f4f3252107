package wsconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// streamAhead is how much of a message the reader goroutine reads before
// anyone asks for it, once Reader has been used. A message that ends within
// it is queued whole; a longer one waits at the head of the queue, its
// first bytes read, until Reader streams it or Receive has it read whole.
// Before the first Reader, messages are read ahead whole, as ever.
const streamAhead = 64 << 10

// msgIn is the reader goroutine's state for one incoming message: every
// byte passes through read, which enforces MaxMessageSize and checks text
// as it arrives.
type msgIn struct {
	r     io.Reader
	n     int64 // bytes read so far
	limit int64 // < 0: no limit
	text  bool
	utf8  utf8Check
}

var errInvalidUTF8 = errors.New("invalid UTF-8 in text message")

// read reads once from the message into b; eof reports its end.
func (m *msgIn) read(b []byte) (n int, eof bool, err error) {
	n, err = m.r.Read(b)
	m.n += int64(n)
	if m.limit >= 0 && m.n > m.limit {
		return n, false, errTooBig
	}
	if m.text && !m.utf8.check(b[:n]) {
		return n, false, errInvalidUTF8
	}
	if err == io.EOF {
		if m.text && !m.utf8.complete() {
			return n, false, errInvalidUTF8
		}
		return n, true, nil
	}
	return n, false, err
}

// fill appends the message's bytes to buf until its end, or until more than
// ahead bytes are buffered (ahead < 0: no bound).
func (m *msgIn) fill(buf []byte, ahead int) ([]byte, bool, error) {
	for {
		if len(buf) == cap(buf) {
			buf = growBuf(buf, m.limit)
		}
		n, eof, err := m.read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if eof || err != nil {
			return buf, eof, err
		}
		if ahead >= 0 && len(buf) > ahead {
			return buf, false, nil
		}
	}
}

// inStream is a message longer than streamAhead, at the head of the queue.
// The consumer that takes it from the queue says on claim whether it
// streams it (Reader) or wants it whole (Receive: the reader goroutine then
// reads the rest and queues the whole message in its place). A stream
// moves in chunks from the reader goroutine, which keeps reading, and so
// keeps answering pings, only as fast as the consumer takes them.
type inStream struct {
	typ     MessageType
	prefix  []byte     // read before the claim: the consumer's first chunk
	claim   chan bool  // buffered: true to stream, false to read whole
	chunks  chan chunk // the stream's further bytes (buffered: one)
	abandon chan struct{}
	once    sync.Once
	failed  chan struct{} // closed when the connection failed mid-message

	// The buffers of a streamed message, pooled again once the consumer
	// has read it to the end (then the reader goroutine is done with
	// them); an abandoned stream leaves them to the garbage collector.
	prefixBuf *[]byte    // from readBufs, holding prefix
	chunkBufs [2]*[]byte // from chunkBufs
}

// chunkBufs holds the further buffers of streamed messages.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, streamAhead); return &b }}

// release returns the buffers to their pools.
func (s *inStream) release() {
	if cap(*s.prefixBuf) <= maxPooledRead {
		readBufs.Put(s.prefixBuf)
	}
	for _, b := range s.chunkBufs {
		chunkBufs.Put(b)
	}
}

type chunk struct {
	b   []byte
	eof bool
}

func (s *inStream) drop() { s.once.Do(func() { close(s.abandon) }) }

// inbound is an item of the queue: a whole message, or a stream.
type inbound struct {
	m Message
	s *inStream
}

// stream runs on the reader goroutine for a message that did not end
// within streamAhead bytes (prefix), and reports whether reading goes on.
func (c *Conn) stream(in msgIn, typ MessageType, bp *[]byte, prefix []byte) bool {
	s := &inStream{typ: typ, prefix: prefix, prefixBuf: bp, claim: make(chan bool, 1),
		chunks: make(chan chunk, 1), abandon: make(chan struct{}), failed: make(chan struct{})}
	var streamed bool
	select {
	case c.queue <- inbound{s: s}:
		select {
		case streamed = <-s.claim:
		case <-c.dropQueue:
			return c.skipRest(&in, prefix)
		}
	case <-c.dropQueue:
		return c.skipRest(&in, prefix)
	}
	if !streamed {
		buf, _, err := in.fill(prefix, -1)
		if err != nil {
			c.readError(err)
			return false
		}
		if c.cfg.log != nil {
			c.trace("websocket message received", "type", typ.String(), "len", len(buf))
		}
		return c.deliver(Message{Type: typ, Data: buf[:len(buf):len(buf)]})
	}
	// Three buffers in turn: the consumer holds one, the channel (of one)
	// another, the reader goroutine fills the third. A chunk goes into
	// the channel only once the consumer took the one before, and so let
	// go of the one before that. The end of the message goes into the
	// channel too, so that reading goes on once the consumer has the last
	// bytes, whether or not it reads on to io.EOF.
	*bp = prefix[:0]
	s.chunkBufs[0], s.chunkBufs[1] = chunkBufs.Get().(*[]byte), chunkBufs.Get().(*[]byte)
	bufs := [3][]byte{prefix[:cap(prefix)], *s.chunkBufs[0], *s.chunkBufs[1]}
	for i := 1; ; i = (i + 1) % 3 {
		n, eof, err := in.read(bufs[i])
		if err != nil {
			c.readError(err)
			close(s.failed)
			return false
		}
		if n == 0 && !eof {
			continue
		}
		select {
		case s.chunks <- chunk{bufs[i][:n], eof}:
		case <-s.abandon:
			return eof || c.skipRest(&in, bufs[i])
		case <-c.dropQueue:
			return eof || c.skipRest(&in, bufs[i])
		}
		if eof {
			if c.cfg.log != nil {
				c.trace("websocket message received", "type", typ.String(), "len", in.n, "streamed", true)
			}
			return true
		}
	}
}

// skipRest reads the rest of a message nobody wants, still checking it.
func (c *Conn) skipRest(in *msgIn, buf []byte) bool {
	buf = buf[:cap(buf)]
	for {
		_, eof, err := in.read(buf)
		if err != nil {
			c.readError(err)
			return false
		}
		if eof {
			return true
		}
	}
}

// Reader returns the next message as a stream, without buffering it whole.
// MaxMessageSize still bounds it (negative: no limit), and text is checked
// as it arrives: the connection fails with 1009 or 1007 as soon as the bytes
// read break the rule, and the Read then fails.
//
// Cancelling ctx, or calling Reader or Receive again before the end,
// discards the rest of the message; the connection stays open. The
// message must be read to its last byte or abandoned that way: until then
// the connection's reader goroutine reads only as fast as the stream is
// read, so pings wait to be answered, as when the queue is full.
//
// The first call of Reader switches the connection to streaming: until
// then every message is read ahead whole and queued, as Receive wants it
// (one arriving during the call is switched at its next 64 KiB). From then
// on, messages of up to 64 KiB are still read ahead whole and queued, and
// Reader serves them from memory, but a longer one is never read ahead
// past its first 64 KiB: it waits at the head of the queue for Reader (or
// Receive, which has it read whole) to take it, and counts as a full queue
// until then. Either way there is one order: Receive and Reader take the
// same queue, and a message is delivered whole by Receive or streamed by
// Reader, never both.
//
// The returned io.Reader is not safe for concurrent use.
func (c *Conn) Reader(ctx context.Context) (MessageType, io.Reader, error) {
	r, err := c.nextReader(ctx, ctx, "read message")
	if err != nil {
		return 0, nil, err
	}
	return r.typ, r, nil
}

// nextReader takes the next message for a reader whose Reads are bounded
// by rctx; wait bounds the wait for the message.
func (c *Conn) nextReader(wait, rctx context.Context, what string) (*msgReader, error) {
	c.streamReads.Store(true)
	c.dropStream()
	in, err := c.next(wait, what)
	if err != nil {
		return nil, err
	}
	var r *msgReader
	if in.s == nil {
		r = &msgReader{c: c, ctx: rctx, typ: in.m.Type, buf: in.m.Data, eof: true}
	} else {
		in.s.claim <- true
		r = &msgReader{c: c, s: in.s, ctx: rctx, typ: in.s.typ, buf: in.s.prefix}
	}
	c.streaming.Store(r)
	return r, nil
}

// dropStream abandons the message the last Reader returned, if it has not
// been read to the end.
func (c *Conn) dropStream() {
	if r := c.streaming.Load(); r != nil {
		r.abandon()
	}
}

// msgReader is what Reader returns.
type msgReader struct {
	c   *Conn
	s   *inStream // nil for a message read whole
	ctx context.Context
	typ MessageType
	buf []byte // the unread rest of the current chunk
	eof bool   // buf is the message's last chunk
	err error  // returned by every later Read
	// dropped is set when a later Reader or Receive discarded the rest.
	dropped atomic.Bool
}

var errDiscarded = errors.New("failed to read message: the rest was discarded by a later Reader or Receive")

func (r *msgReader) Read(p []byte) (int, error) { return r.read(r.ctx, p, true) }

// read is Read bounded by ctx; when ctx ends, drop says whether the rest of
// the message is discarded (Reader) or stays for a later read (NetConn's
// deadlines).
func (r *msgReader) read(ctx context.Context, p []byte, drop bool) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.dropped.Load() {
		r.err = errDiscarded
		return 0, r.err
	}
	if err := ctx.Err(); err != nil {
		return 0, r.cancelled(ctx, drop)
	}
	if len(r.buf) == 0 {
		if r.eof {
			r.err = io.EOF
			if r.s != nil {
				r.s.release()
			}
			return 0, io.EOF
		}
		select {
		case ch := <-r.s.chunks:
			r.buf, r.eof = ch.b, ch.eof
			if r.eof {
				r.c.streaming.CompareAndSwap(r, nil)
			}
		case <-r.s.failed:
			r.err = r.c.closedErr()
			return 0, r.err
		case <-r.s.abandon:
			// A Reader or Receive on another goroutine discarded the rest;
			// the reader goroutine may never send another chunk.
			r.err = errDiscarded
			return 0, r.err
		case <-r.c.dropQueue:
			r.err = r.c.closedErr()
			return 0, r.err
		case <-ctx.Done():
			return 0, r.cancelled(ctx, drop)
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *msgReader) cancelled(ctx context.Context, drop bool) error {
	err := fmt.Errorf("failed to read message: %w", ctx.Err())
	if drop {
		r.abandon()
		r.err = err
	}
	return err
}

// abandon discards the rest of the message.
func (r *msgReader) abandon() {
	r.dropped.Store(true)
	r.c.streaming.CompareAndSwap(r, nil)
	if r.s != nil {
		r.s.drop()
	}
}

// Writer streams one data message as fragments: a fragment goes out each
// time the write buffer fills (a client's is 64 KiB, a server's 4 KiB, and
// on a server a large Write goes out as a fragment of its own), and Close
// sends the last one. Other data sends wait until the writer is closed;
// pings, pongs and Close frames go out between its frames.
//
// If ctx ends while Writer waits for its turn, nothing is sent and the
// connection stays usable. Once Writer has returned, the message has
// begun: if ctx ends before Close returns, the connection is aborted, since
// a frame cannot be resumed halfway and no other message may start until
// this one ends. The writer must be closed; until then no other data
// message can be sent.
//
// A text writer checks its bytes as they come: a Write that would make the
// text invalid UTF-8 fails and sends none of its bytes, and Close fails,
// aborting the connection, when the text ends inside a character. When
// compression was negotiated a streamed message is always compressed (its
// size, which CompressionThreshold compares, is not known in advance), as
// it streams: deflate holds no more than its window, never the message.
//
// The returned writer is not safe for concurrent use.
func (c *Conn) Writer(ctx context.Context, typ MessageType) (io.WriteCloser, error) {
	if typ != Text && typ != Binary {
		return nil, fmt.Errorf("failed to open writer: invalid message type %v", typ)
	}
	if err := c.acquireWrite(ctx, "open writer"); err != nil {
		return nil, err
	}
	if c.cfg.compress.mode != CompressionDisabled {
		// The size is not known in advance: a stream is compressed
		// whenever compression was negotiated.
		c.ws.EnableWriteCompression(true)
	}
	gw, err := c.ws.NextWriter(int(typ))
	if err != nil {
		c.releaseWrite()
		return nil, c.writeFailed("open writer", err)
	}
	w := &msgWriter{c: c, ctx: ctx, w: gw, typ: typ, watched: ctx.Done() != nil}
	if w.watched {
		// As for Send, but the connection is aborted as soon as ctx ends:
		// the message may wait between Writes.
		c.watch.arm(ctx, c, true)
	}
	return w, nil
}

type msgWriter struct {
	c       *Conn
	ctx     context.Context
	w       io.WriteCloser
	watched bool // c.watch is armed for ctx
	typ     MessageType
	utf8    utf8Check
	n       int64
	closed  bool
	err     error
}

var errWriterClosed = errors.New("failed to write message: writer closed")

func (w *msgWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errWriterClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	select {
	case <-w.c.closing:
		w.err = w.failed(w.c.closedErr())
		return 0, w.err
	default:
	}
	if err := w.ctx.Err(); err != nil {
		w.err = w.failed(err)
		return 0, w.err
	}
	if w.typ == Text {
		u := w.utf8
		if !u.check(p) {
			return 0, errors.New("failed to write message: text is not valid UTF-8")
		}
		w.utf8 = u
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	if err != nil {
		w.err = w.failed(err)
		return n, w.err
	}
	return n, nil
}

// Close sends the last fragment and gives the turn to the next message.
// Closing again returns nil.
func (w *msgWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	defer w.c.releaseWrite()
	if w.err != nil {
		w.finish()
		return w.err
	}
	if w.typ == Text && !w.utf8.complete() {
		w.finish()
		w.c.abort(abortedSend)
		return errors.New("failed to close writer: text ends inside a UTF-8 character (connection aborted)")
	}
	err := w.w.Close()
	if w.finish() {
		// The watch aborted the connection.
		return midMessage("close writer", w.ctx.Err())
	}
	if err != nil {
		return w.failed(err)
	}
	if w.c.cfg.log != nil {
		w.c.trace("websocket message sent", "type", w.typ.String(), "len", w.n, "streamed", true)
	}
	return nil
}

// finish ends the watch on the message and reports whether it fired.
func (w *msgWriter) finish() bool { return w.watched && w.c.watch.finish() }

func (w *msgWriter) failed(err error) error {
	if w.ctx.Err() != nil {
		w.c.abort(abortedSend)
		return midMessage("write message", w.ctx.Err())
	}
	var closed *ConnectionClosedError
	if errors.As(err, &closed) {
		return err
	}
	return w.c.writeFailed("write message", err)
}

// CloseRead is for connections that only write. It reads and handles
// everything the peer sends from now on: pings are answered and the peer's
// Close is echoed as ever, and a data message closes the connection with
// 1008 (policy violation). The returned context ends, with the
// *ConnectionClosedError as cause, as soon as closing starts (a local
// Close, the peer's Close, a failure), not only once the closing handshake
// is over: a loop that only writes stops at once. It also ends when ctx
// ends, which also stops the reading. Do not call Receive or Reader after
// CloseRead.
func (c *Conn) CloseRead(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-c.closing:
			cancel(c.closedErr())
		case <-ctx.Done():
		}
	}()
	go func() {
		if _, _, err := c.Reader(ctx); err != nil {
			return
		}
		c.Close(context.WithoutCancel(ctx), StatusPolicyViolation, "unexpected data message")
	}()
	return ctx
}
