package wsconn_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/wsconn"
)

// pattern is the byte at offset i of the test streams: ASCII, so that it is
// valid text too, and position-dependent, so that a lost, repeated or
// reordered piece shows.
func pattern(i int64) byte { return 'a' + byte(i%23) + byte(i/65536%3) }

// patternReader yields n bytes of pattern without holding them.
type patternReader struct{ off, n int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	for i := range p {
		p[i] = pattern(r.off + int64(i))
	}
	r.off += int64(len(p))
	return len(p), nil
}

// patternChecker verifies that what is written to it is pattern, in order.
type patternChecker struct {
	off int64
	err error
}

func (w *patternChecker) Write(p []byte) (int, error) {
	for i, b := range p {
		if w.err == nil && b != pattern(w.off+int64(i)) {
			w.err = fmt.Errorf("byte %d is %q, want %q", w.off+int64(i), b, pattern(w.off+int64(i)))
		}
	}
	w.off += int64(len(p))
	return len(p), nil
}

// check fails the test unless exactly n bytes of pattern were written.
func (w *patternChecker) check(t *testing.T, n int64) {
	t.Helper()
	if w.err != nil {
		t.Fatal(w.err)
	}
	if w.off != n {
		t.Fatalf("got %d bytes, want %d", w.off, n)
	}
}

// writePattern streams n bytes of pattern through a Writer in writes of
// size bytes.
func writePattern(ctx context.Context, c *wsconn.Conn, typ wsconn.MessageType, n int64, size int) error {
	w, err := c.Writer(ctx, typ)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{w}, &patternReader{n: n}, make([]byte, size)); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// frameCounter wraps a client's connection and counts the data frames it
// writes (after the HTTP request), parsing their headers as they pass.
type frameCounter struct {
	net.Conn
	mu        sync.Mutex
	inHeaders bool
	tail      uint32
	hdr       []byte
	skip      uint64
	frames    int // data frames (text, binary, continuation)
	controls  int
	firstRSV1 bool   // the first data frame had RSV1 (compressed) set
	payload   uint64 // data frames' payload bytes
}

func countFrames(d func(ctx context.Context, network, addr string) (net.Conn, error), out **frameCounter) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		fc := &frameCounter{Conn: c, inHeaders: true}
		*out = fc
		return fc, nil
	}
}

func (f *frameCounter) Write(p []byte) (int, error) {
	f.mu.Lock()
	for _, b := range p {
		switch {
		case f.inHeaders:
			f.tail = f.tail<<8 | uint32(b)
			f.inHeaders = f.tail != 0x0d0a0d0a
		case f.skip > 0:
			f.skip--
		default:
			f.hdr = append(f.hdr, b)
			if len(f.hdr) < 2 {
				continue
			}
			need := 2 + 4 // client frames are masked
			switch f.hdr[1] & 0x7f {
			case 126:
				need += 2
			case 127:
				need += 8
			}
			if len(f.hdr) < need {
				continue
			}
			n := uint64(f.hdr[1] & 0x7f)
			switch n {
			case 126:
				n = uint64(f.hdr[2])<<8 | uint64(f.hdr[3])
			case 127:
				n = 0
				for _, c := range f.hdr[2:10] {
					n = n<<8 | uint64(c)
				}
			}
			if f.hdr[0]&0x0f < 8 {
				if f.frames == 0 {
					f.firstRSV1 = f.hdr[0]&0x40 != 0
				}
				f.frames++
				f.payload += n
			} else {
				f.controls++
			}
			f.skip, f.hdr = n, f.hdr[:0]
		}
	}
	f.mu.Unlock()
	return f.Conn.Write(p)
}

func (f *frameCounter) dataFrames() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frames
}

var netDialer net.Dialer

// A 16 MiB message written through Writer in 64 KiB writes arrives intact,
// as many frames, at a raw gorilla peer and at a wsconn peer reading with
// Reader; the writer allocates far less than the message meanwhile.
func TestWriterStreamsLargeMessage(t *testing.T) {
	const size = 16 << 20
	for _, peer := range []string{"gorilla", "wsconn"} {
		t.Run(peer, func(t *testing.T) {
			ctx := ctxTimeout(t, 60*time.Second)
			result := make(chan error, 1)
			var url string
			if peer == "gorilla" {
				url = rawPeer(t, nil, func(ws *websocket.Conn) {
					ws.SetReadLimit(-1)
					typ, r, err := ws.NextReader()
					if err != nil {
						result <- err
						return
					}
					var chk patternChecker
					if _, err := io.Copy(&chk, r); err != nil {
						result <- err
						return
					}
					result <- checkResult(&chk, typ == websocket.BinaryMessage, size)
					ws.ReadMessage() // until the client closes
				})
			} else {
				url = streamChecker(t, size, result, &wsconn.ServerOptions{MaxMessageSize: -1})
			}
			var fc *frameCounter
			c := dial(t, url, &wsconn.DialOptions{NetDialContext: countFrames(netDialer.DialContext, &fc)})

			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := writePattern(ctx, c, wsconn.Binary, size, 64<<10); err != nil {
				t.Fatal(err)
			}
			if err := <-result; err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			// Everything the process allocated while 16 MiB went through
			// (the peer's reading included) is a fraction of the message.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
				t.Errorf("allocated %d bytes while streaming %d", alloc, size)
			} else {
				t.Logf("allocated %d KiB while streaming %d MiB", alloc>>10, size>>20)
			}
			if n := fc.dataFrames(); n < 200 {
				t.Errorf("message went out as %d frames, want many (one per 64 KiB)", n)
			}
		})
	}
}

// streamChecker serves connections (with opts) that read one binary
// message with Reader and report on result whether it is size bytes of
// pattern.
func streamChecker(t *testing.T, size int64, result chan<- error, opts *wsconn.ServerOptions) string {
	return serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			result <- err
			return nil
		}
		var chk patternChecker
		if _, err := io.Copy(&chk, rd); err != nil {
			result <- err
			return nil
		}
		result <- checkResult(&chk, typ == wsconn.Binary, size)
		c.Receive(ctx) // until the client closes
		return nil
	}, opts)
}

func checkResult(chk *patternChecker, typeOK bool, n int64) error {
	switch {
	case !typeOK:
		return errors.New("wrong message type")
	case chk.err != nil:
		return chk.err
	case chk.off != n:
		return fmt.Errorf("got %d bytes, want %d", chk.off, n)
	}
	return nil
}

// A ping issued while a Writer is open is answered before the writer
// closes: control frames go out between its fragments.
func TestWriterPingBetweenFragments(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	got := make(chan error, 1)
	url := streamChecker(t, 2<<20, got, &wsconn.ServerOptions{MaxMessageSize: -1})
	c := dial(t, url, nil)
	w, err := c.Writer(ctx, wsconn.Binary)
	if err != nil {
		t.Fatal(err)
	}
	src := &patternReader{n: 2 << 20}
	if _, err := io.CopyN(w, src, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx, []byte("mid-message")); err != nil {
		t.Fatalf("Ping with a Writer open: %v", err)
	}
	if _, err := io.Copy(w, src); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// orderedPeer is stalledPeer (send_test.go) reading from the start.
func orderedPeer(t *testing.T) (*wsconn.Conn, chan string) {
	c, release, got := stalledPeer(t)
	close(release)
	return c, got
}

// A Send issued while a Writer is open goes out after the streamed message,
// not inside it; a Writer or Send whose ctx ends while waiting for the turn
// fails and sends nothing.
func TestWriterHoldsTheTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, got := orderedPeer(t)
		ctx := context.Background()
		w, err := c.Writer(ctx, wsconn.Text)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, strings.Repeat("x", 100_000)); err != nil {
			t.Fatal(err)
		}
		sent := make(chan error)
		go func() { sent <- c.SendText(ctx, "after") }()

		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error)
		go func() {
			w2, err := c.Writer(cctx, wsconn.Text)
			if err == nil {
				w2.Close()
			}
			errc <- err
		}()
		synctest.Wait() // both wait for the turn
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Writer = %v, want context.Canceled", err)
		}
		if _, err := io.WriteString(w, "end"); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		if m := <-got; m != strings.Repeat("x", 100_000)+"end" {
			t.Fatalf("first message: %d bytes", len(m))
		}
		if m := <-got; m != "after" {
			t.Fatalf("second message %q, want \"after\"", m)
		}
		if err := c.Close(ctx, wsconn.StatusNormalClosure, ""); err != nil {
			t.Fatal(err)
		}
		if m, ok := <-got; ok {
			t.Fatalf("unexpected message %q", m)
		}
	})
}

// A Writer whose ctx ends mid-message fails the connection: a frame cannot
// be resumed, and no other message may start.
func TestWriterCtxEndsMidMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := orderedPeer(t)
		ctx, cancel := context.WithCancel(context.Background())
		w, err := c.Writer(ctx, wsconn.Binary)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, 100_000)); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-c.Done()
		if r := closeReason(t, c); r.Code != wsconn.StatusAbnormalClosure {
			t.Fatalf("close reason %v, want 1006", r)
		}
		if _, err := w.Write([]byte("more")); err == nil {
			t.Fatal("Write after the abort succeeded")
		}
		if err := w.Close(); err == nil {
			t.Fatal("Close after the abort succeeded")
		}
		if err := c.SendText(context.Background(), "x"); !errors.Is(err, wsconn.ErrConnectionClosed) {
			t.Fatalf("Send = %v, want ErrConnectionClosed", err)
		}
	})
}

// A text Writer refuses a Write that would make the text invalid and sends
// none of it; the message then ends as written.
func TestWriterTextMustBeUTF8(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, got := orderedPeer(t)
		ctx := context.Background()
		w, err := c.Writer(ctx, wsconn.Text)
		if err != nil {
			t.Fatal(err)
		}
		clef := "𝄞"
		for _, s := range []string{"a", clef[:1], clef[1:3]} {
			if _, err := io.WriteString(w, s); err != nil {
				t.Fatalf("Write(%q): %v", s, err)
			}
		}
		if _, err := io.WriteString(w, "\xff"); err == nil {
			t.Fatal("Write of an invalid continuation succeeded")
		}
		if _, err := io.WriteString(w, clef[3:]+"b"); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if m := <-got; m != "a𝄞b" {
			t.Fatalf("message %q, want \"a𝄞b\"", m)
		}
		if _, err := c.Writer(ctx, wsconn.MessageType(9)); err == nil {
			t.Fatal("Writer accepted message type 9")
		}
		c.Close(ctx, wsconn.StatusNormalClosure, "")
	})
}

// largePeer is a raw gorilla server that runs send with its connection,
// then reads until the client closes.
func largePeer(t *testing.T, send func(ws *websocket.Conn) error) string {
	return largePeerOn(t, nil, send)
}

// largePeerOn is largePeer on ln (nil: a loopback TCP listener).
func largePeerOn(t *testing.T, ln net.Listener, send func(ws *websocket.Conn) error) string {
	return rawPeer(t, ln, func(ws *websocket.Conn) {
		if err := send(ws); err != nil {
			t.Errorf("peer: %v", err)
			return
		}
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})
}

// writeFrames writes n bytes of pattern as one message of frames of size
// bytes, typ being websocket.TextMessage or BinaryMessage.
func writeFrames(ws *websocket.Conn, typ int, n int64, size int) error {
	w, err := ws.NextWriter(typ)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{w}, &patternReader{n: n}, make([]byte, size)); err != nil {
		return err
	}
	return w.Close()
}

// Reader streams a 64 MiB message (MaxMessageSize -1) while the heap grows
// by far less than the message.
func TestReaderStreamsHugeMessage(t *testing.T) {
	const size = 64 << 20
	url := largePeer(t, func(ws *websocket.Conn) error {
		return writeFrames(ws, websocket.BinaryMessage, size, 256<<10)
	})
	ctx := ctxTimeout(t, 60*time.Second)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	c := dial(t, url, &wsconn.DialOptions{MaxMessageSize: -1})
	typ, r, err := c.Reader(ctx)
	if err != nil || typ != wsconn.Binary {
		t.Fatalf("Reader = %v, %v", typ, err)
	}
	var chk patternChecker
	var peak uint64
	buf := make([]byte, 32<<10)
	for i := 0; ; i++ {
		n, err := r.Read(buf)
		chk.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%256 == 0 {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}
	chk.check(t, size)
	growth := int64(peak) - int64(base.HeapAlloc)
	if growth >= 16<<20 {
		t.Fatalf("heap grew by %d MiB while streaming %d MiB", growth>>20, size>>20)
	}
	t.Logf("heap grew by %d KiB at most while streaming %d MiB", max(growth, 0)>>10, size>>20)
	if err := c.Ping(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// A streamed message over MaxMessageSize fails the connection with 1009,
// without more than the limit ever reaching the Reader.
func TestReaderOverLimit(t *testing.T) {
	const limit = 1 << 20
	url := largePeer(t, func(ws *websocket.Conn) error {
		writeFrames(ws, websocket.BinaryMessage, 2*limit, 32<<10) // fails once closed
		return nil
	})
	ctx := ctxTimeout(t, 20*time.Second)
	c := dial(t, url, &wsconn.DialOptions{MaxMessageSize: limit})
	_, r, err := c.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	wantClosed(t, err, wsconn.StatusMessageTooBig, "*")
	if n > limit {
		t.Fatalf("the Reader got %d bytes, over the limit of %d", n, limit)
	}
	<-c.Done()
	if r := closeReason(t, c); r.Code != wsconn.StatusMessageTooBig {
		t.Fatalf("close reason %v, want 1009", r)
	}
}

// Invalid UTF-8 in a streamed text message fails the connection with 1007
// as soon as the bytes arrive, before the message ends.
func TestReaderInvalidUTF8FailsAtOnce(t *testing.T) {
	peerSaw := make(chan error, 1)
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		w, err := ws.NextWriter(websocket.TextMessage)
		if err != nil {
			peerSaw <- err
			return
		}
		io.CopyN(w, &patternReader{n: 1 << 20}, 200_000)
		w.Write([]byte("κόσμε\xed\xa0\x80")) // a surrogate: never valid
		// Flush what was written without ending the message (the write
		// buffer is 4 KiB), then read: wsconn must fail the connection
		// before the message is over.
		io.CopyN(w, &patternReader{n: 1 << 20}, 8<<10)
		_, _, err = ws.ReadMessage()
		peerSaw <- err
	})
	ctx := ctxTimeout(t, 20*time.Second)
	c := dial(t, url, nil)
	// The reader goroutine may find the bad bytes (and fail the
	// connection) before Reader is called: then Reader reports the close.
	_, r, err := c.Reader(ctx)
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	wantClosed(t, err, wsconn.StatusInvalidFramePayloadData, "*")
	var ce *websocket.CloseError
	if err := <-peerSaw; !errors.As(err, &ce) || ce.Code != 1007 {
		t.Fatalf("peer read %v, want Close 1007", err)
	}
}

// Cancelling a Reader mid-message discards the rest of it: the next
// Receive returns the next message intact, and Ping works.
func TestReaderCancelDiscardsRest(t *testing.T) {
	url := largePeer(t, func(ws *websocket.Conn) error {
		if err := writeFrames(ws, websocket.BinaryMessage, 1<<20, 16<<10); err != nil {
			return err
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte("next")); err != nil {
			return err
		}
		// The rest only once the client asks: until a long message is
		// taken, the client reads nothing after it (its pong included).
		if _, _, err := ws.ReadMessage(); err != nil {
			return err
		}
		if err := writeFrames(ws, websocket.BinaryMessage, 1<<20, 16<<10); err != nil {
			return err
		}
		return ws.WriteMessage(websocket.TextMessage, []byte("last"))
	})
	ctx := ctxTimeout(t, 20*time.Second)
	c := dial(t, url, &wsconn.DialOptions{MaxMessageSize: 4 << 20})

	rctx, cancel := context.WithCancel(ctx)
	_, r, err := c.Reader(rctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v, want context.Canceled", err)
	}
	m, err := c.Receive(ctx)
	if err != nil || string(m.Data) != "next" {
		t.Fatalf("Receive = %q, %v; want \"next\"", m.Data, err)
	}
	if err := c.Ping(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SendText(ctx, "go on"); err != nil {
		t.Fatal(err)
	}

	// Calling Reader again before the end discards the rest too.
	_, r, err = c.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	_, r2, err := c.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r2); err != nil || string(b) != "last" {
		t.Fatalf("second Reader = %q, %v; want \"last\"", b, err)
	}
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Fatal("the abandoned reader still reads")
	}
}

// Receive and Reader take one queue in one order: each message is
// delivered whole by Receive or streamed by Reader, never both; a long
// message taken by Receive is read whole, short ones by Reader come from
// memory; a Receive cancelled while a long message is read loses nothing.
func TestReceiveAndReaderKeepOneOrder(t *testing.T) {
	const long = 300_000
	url := largePeer(t, func(ws *websocket.Conn) error {
		for _, n := range []int64{5, long, 6, long, long, 7} {
			typ := websocket.BinaryMessage
			if n < long {
				typ = websocket.TextMessage
			}
			if err := writeFrames(ws, typ, n, 64<<10); err != nil {
				return err
			}
		}
		return nil
	})
	ctx := ctxTimeout(t, 20*time.Second)
	c := dial(t, url, &wsconn.DialOptions{MessageQueueSize: 4})
	expect := func(what string, typ wsconn.MessageType, data []byte, n int64) {
		t.Helper()
		var chk patternChecker
		chk.Write(data)
		chk.check(t, n)
		if (n < long) != (typ == wsconn.Text) {
			t.Fatalf("%s: type %v", what, typ)
		}
	}
	readAll := func() (wsconn.MessageType, []byte) {
		t.Helper()
		typ, r, err := c.Reader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return typ, b
	}
	receive := func(what string, rctx context.Context, n int64) error {
		t.Helper()
		m, err := c.Receive(rctx)
		if err == nil {
			expect(what, m.Type, m.Data, n)
		}
		return err
	}
	typ, b := readAll()
	expect("Reader of a short message", typ, b, 5)
	if err := receive("Receive of a long message", ctx, long); err != nil {
		t.Fatal(err)
	}
	if err := receive("Receive of a short message", ctx, 6); err != nil {
		t.Fatal(err)
	}
	typ, b = readAll()
	expect("Reader of a long message", typ, b, long)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err := receive("Receive after a cancelled Receive", cctx, long)
	if errors.Is(err, context.Canceled) {
		// The long message was not ready, or was being read whole.
		err = receive("Receive after a cancelled Receive", ctx, long)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := receive("the last message", ctx, 7); err != nil {
		t.Fatal(err)
	}
}

// CloseRead: the peer's pings are answered, its data message closes the
// connection with 1008, and the returned context ends then.
func TestCloseReadDataMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		saw := make(chan error, 1)
		url := rawPeer(t, ln, func(ws *websocket.Conn) {
			pong := make(chan string, 1)
			ws.SetPongHandler(func(s string) error { pong <- s; return nil })
			read := make(chan error, 1)
			go func() {
				// The pong handler runs inside a read.
				_, _, err := ws.ReadMessage()
				read <- err
			}()
			ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second))
			if p := <-pong; p != "are you there" {
				t.Errorf("pong %q", p)
			}
			ws.WriteMessage(websocket.TextMessage, []byte("not welcome"))
			saw <- <-read
		})
		c, err := wsconn.Dial(context.Background(), url, &wsconn.DialOptions{NetDialContext: ln.Dial})
		if err != nil {
			t.Fatal(err)
		}
		ctx := c.CloseRead(context.Background())
		<-ctx.Done()
		var ce *websocket.CloseError
		if err := <-saw; !errors.As(err, &ce) || ce.Code != 1008 {
			t.Fatalf("peer read %v, want Close 1008", err)
		}
		wantClosed(t, context.Cause(ctx), wsconn.StatusPolicyViolation, "*")
	})
}

// CloseRead: the peer's Close ends the returned context within a second.
func TestCloseReadPeerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		url := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			if err := c.Ping(ctx, nil); err != nil { // answered under CloseRead
				return err
			}
			return c.Close(ctx, wsconn.StatusGoingAway, "bye")
		}, nil)
		c, err := wsconn.Dial(context.Background(), url, &wsconn.DialOptions{NetDialContext: ln.Dial})
		if err != nil {
			t.Fatal(err)
		}
		ctx := c.CloseRead(context.Background())
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			t.Fatal("CloseRead's context still open a second after the peer closed")
		}
		wantClosed(t, context.Cause(ctx), wsconn.StatusGoingAway, "bye")
	})
}

// CloseRead's context ends as soon as closing starts, not when the closing
// handshake is over: here the peer does not answer the Close for as long as
// the disconnect timeout, and a loop that only writes must stop at once.
func TestCloseReadEndsWhenClosingStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		release := make(chan struct{})
		url := rawPeer(t, ln, func(ws *websocket.Conn) { <-release })
		c, err := wsconn.Dial(context.Background(), url, &wsconn.DialOptions{NetDialContext: ln.Dial, DisconnectTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx := c.CloseRead(context.Background())
		closed := make(chan error, 1)
		go func() { closed <- c.Close(context.Background(), wsconn.StatusNormalClosure, "bye") }()
		<-ctx.Done()
		select {
		case <-c.Done():
			t.Error("CloseRead's context ended only once the connection was closed")
		default:
		}
		wantClosed(t, context.Cause(ctx), wsconn.StatusNormalClosure, "bye")
		close(release)
		<-closed // the peer hung up without answering: whatever Close says
		<-c.Done()
	})
}

// With compression negotiated a Writer's message goes out compressed (RSV1
// on its first frame) and arrives intact through a streaming Reader.
func TestStreamCompressed(t *testing.T) {
	const size = 4 << 20
	result := make(chan error, 1)
	url := streamChecker(t, size, result, &wsconn.ServerOptions{MaxMessageSize: -1, Compression: wsconn.CompressionNoContextTakeover})
	var fc *frameCounter
	c := dial(t, url, &wsconn.DialOptions{NetDialContext: countFrames(netDialer.DialContext, &fc),
		Compression: wsconn.CompressionNoContextTakeover})
	ctx := ctxTimeout(t, 30*time.Second)
	if err := writePattern(ctx, c, wsconn.Binary, size, 64<<10); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if !fc.firstRSV1 {
		t.Fatal("the streamed message went out uncompressed")
	}
	if fc.payload >= size/2 {
		t.Fatalf("%d bytes on the wire for %d of a repetitive pattern", fc.payload, size)
	}
}

// A connection only ever used with Receive reads a long message ahead
// whole, as it always did: a ping behind it is answered before anyone
// receives it.
func TestReceiveOnlyReadsLongMessagesAhead(t *testing.T) {
	const size = 300_000
	pong := make(chan struct{})
	url := largePeer(t, func(ws *websocket.Conn) error {
		ws.SetPongHandler(func(string) error { close(pong); return nil })
		if err := writeFrames(ws, websocket.BinaryMessage, size, 64<<10); err != nil {
			return err
		}
		return ws.WriteControl(websocket.PingMessage, []byte("behind"), time.Now().Add(5*time.Second))
	})
	ctx := ctxTimeout(t, 20*time.Second)
	c := dial(t, url, nil)
	select {
	case <-pong:
	case <-ctx.Done():
		t.Fatal("the ping behind an unreceived long message was not answered")
	}
	m, err := c.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var chk patternChecker
	chk.Write(m.Data)
	chk.check(t, size)
}

// A Receive on another goroutine discards the rest of a message a Reader
// is streaming: a Read blocked on that goroutine, waiting for bytes the peer
// has not sent yet, fails at once with the discard error (it used to wait
// for the next chunk, which the reader goroutine, skipping the rest, never
// sent), and Receive gets the next message.
func TestReceiveFromAnotherGoroutineDropsStream(t *testing.T) {
	const part = 100_000 // more than the 64 KiB read ahead: the message streams
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		// The peer sends the long message once the client streams (had it
		// begun before, the reader goroutine would read it whole), and its
		// second half on resume.
		streaming, resume := make(chan struct{}), make(chan struct{})
		release := func(ch chan struct{}) {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
		defer release(resume) // a failed test lets the peer go on
		defer release(streaming)
		url := largePeerOn(t, ln, func(ws *websocket.Conn) error {
			if err := ws.WriteMessage(websocket.TextMessage, []byte("first")); err != nil {
				return err
			}
			<-streaming
			w, err := ws.NextWriter(websocket.BinaryMessage)
			if err != nil {
				return err
			}
			// A server's large Write goes out at once, as a frame of its own.
			if _, err := w.Write(make([]byte, part)); err != nil {
				return err
			}
			<-resume
			if _, err := w.Write(make([]byte, part)); err != nil {
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
			return ws.WriteMessage(websocket.TextMessage, []byte("next"))
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := wsconn.Dial(ctx, url, &wsconn.DialOptions{NetDialContext: ln.Dial})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background(), wsconn.StatusNormalClosure, "")
		// The first Reader switches the connection to streaming.
		if _, r, err := c.Reader(ctx); err != nil {
			t.Fatal(err)
		} else if b, err := io.ReadAll(r); err != nil || string(b) != "first" {
			t.Fatalf("first message = %q, %v", b, err)
		}
		release(streaming)
		_, r, err := c.Reader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, part)); err != nil {
			t.Fatal(err)
		}
		readErr := make(chan error, 1)
		go func() {
			_, err := r.Read(make([]byte, 1)) // waits for bytes the peer holds back
			readErr <- err
		}()
		synctest.Wait()
		got := make(chan error, 1)
		go func() {
			m, err := c.Receive(ctx)
			if err == nil && string(m.Data) != "next" {
				err = fmt.Errorf("got %q, want \"next\"", m.Data)
			}
			got <- err
		}()
		synctest.Wait() // Receive has dropped the stream
		select {
		case err := <-readErr:
			if err == nil || !strings.Contains(err.Error(), "discarded") {
				t.Errorf("blocked Read = %v, want the discard error", err)
			}
		default:
			t.Error("a Read blocked on a stream another goroutine's Receive dropped is still waiting")
			cancel() // frees it
			<-readErr
		}
		release(resume)
		if err := <-got; err != nil {
			t.Errorf("Receive: %v", err)
		}
	})
}
