package conformance_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// caseTimeout bounds every conformance case: a bound against hangs, not a
// speed check (a 1 MiB compressed echo under -race on a loaded 2-core
// machine has taken over 10 s).
const caseTimeout = 30 * time.Second

// wsGUID is the magic string of the opening handshake (RFC 6455 §1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// readResult is one frame, or the error that ended reading.
type readResult struct {
	f   frame
	err error
}

// peer is the raw side of a conformance case: it writes hand-built frames
// and checks every frame wsconn sends back.
type peer struct {
	t         testing.TB
	ctx       context.Context
	conn      net.Conn
	client    bool // we play the client: we mask, wsconn may not
	chop      int  // >0: writes are cut into pieces of this many bytes
	frames    chan readResult
	sentClose bool // we sent a Close frame (valid or not)
	closed    bool // we saw wsconn's Close frame
	deflate   bool // permessage-deflate was negotiated: RSV1 may mark a message
	inflated  bool // the last message expectMessage read was compressed
	streamed  bool // wsconn streams its echo: it may begin before a message fails
}

// newPeer starts reading frames from br (which buffers conn) in the
// background; the test's cleanup closes conn and waits for the reader.
func newPeer(t testing.TB, ctx context.Context, conn net.Conn, br *bufio.Reader, client bool) *peer {
	p := &peer{t: t, ctx: ctx, conn: conn, client: client, frames: make(chan readResult)}
	stop := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			f, err := readFrame(br)
			select {
			case p.frames <- readResult{f, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		conn.Close()
		<-exited
	})
	return p
}

// write encodes frames and writes them in one piece, or in p.chop-byte
// pieces. A failed write is only logged: wsconn may rightly have closed the
// connection already, and the frames read afterwards tell what happened.
func (p *peer) write(fs ...frame) {
	p.t.Helper()
	var b []byte
	for _, f := range fs {
		b = appendFrame(b, f, p.client)
		if f.op == opClose {
			p.sentClose = true
		}
	}
	p.writeRaw(b)
}

// writeRaw writes bytes as they are.
func (p *peer) writeRaw(b []byte) {
	p.t.Helper()
	p.conn.SetWriteDeadline(deadline(p.ctx))
	for len(b) > 0 {
		n := len(b)
		if p.chop > 0 {
			n = min(n, p.chop)
		}
		if _, err := p.conn.Write(b[:n]); err != nil {
			p.t.Logf("raw peer write: %v", err)
			return
		}
		b = b[n:]
	}
}

func deadline(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(caseTimeout)
	}
	return d
}

// next returns the next frame wsconn sent, or the error that ended the
// stream; the test fails if neither comes before the case's deadline.
func (p *peer) next() (frame, error) {
	p.t.Helper()
	select {
	case r := <-p.frames:
		return r.f, r.err
	case <-p.ctx.Done():
		p.t.Fatalf("timed out waiting for a frame from wsconn: %v", p.ctx.Err())
		return frame{}, nil
	}
}

// nextFrame returns the next frame and checks it is well-formed for its
// sender: no reserved bits, masked iff wsconn is the client, control frames
// final and at most 125 bytes, nothing after a Close.
func (p *peer) nextFrame() frame {
	p.t.Helper()
	f, err := p.next()
	if err != nil {
		p.t.Fatalf("want a frame from wsconn, got %v", err)
	}
	if p.closed {
		p.t.Fatalf("wsconn sent %v after its Close frame", f)
	}
	switch {
	case f.rsv != 0 && !(p.deflate && f.rsv == 4 && (f.op == opText || f.op == opBinary)):
		p.t.Fatalf("wsconn sent reserved bits: %v", f)
	case f.masked == p.client:
		p.t.Fatalf("wsconn (client=%t) sent a frame with masked=%t: %v", !p.client, f.masked, f)
	case f.op >= 8 && (!f.fin || len(f.payload) > 125):
		p.t.Fatalf("wsconn sent a fragmented or oversized control frame: %v", f)
	}
	if f.op == opClose {
		p.closed = true
	}
	return f
}

// expectFrame requires the next frame to be a final frame with op and
// payload.
func (p *peer) expectFrame(op byte, payload []byte) {
	p.t.Helper()
	f := p.nextFrame()
	if f.op != op || !f.fin || !bytes.Equal(f.payload, payload) {
		p.t.Fatalf("want frame op=%#x payload=%s, got %v", op, short(payload), f)
	}
}

// expectMessage requires the next frames to form one data message of type
// op with payload (wsconn may fragment it, and compress it when deflate
// was negotiated: p.inflated then says so).
func (p *peer) expectMessage(op byte, payload []byte) {
	p.t.Helper()
	f := p.nextFrame()
	if f.op != op {
		p.t.Fatalf("want a message with op=%#x (%s), got %v", op, short(payload), f)
	}
	p.inflated = f.rsv == 4
	got := f.payload
	for !f.fin {
		f = p.nextFrame()
		if f.op != opCont {
			p.t.Fatalf("want a continuation frame, got %v", f)
		}
		got = append(got, f.payload...)
	}
	if p.inflated {
		var err error
		if got, err = inflate(got); err != nil {
			p.t.Fatalf("wsconn sent a compressed message that does not inflate: %v", err)
		}
	}
	if !bytes.Equal(got, payload) {
		p.t.Fatalf("echoed message differs: got %s, want %s", short(got), short(payload))
	}
}

// closeWant is a Close frame or close reason a case expects.
type closeWant struct {
	code      int
	alt       int     // another acceptable code, or 0
	reason    *string // exact reason, when set
	reasonHas string  // a substring the reason must contain
	orEmpty   bool    // an empty Close frame is accepted too (wire only)
}

func (w closeWant) String() string {
	s := fmt.Sprint(w.code)
	if w.alt != 0 {
		s += fmt.Sprintf(" or %d", w.alt)
	}
	if w.reason != nil && *w.reason != "" {
		s += fmt.Sprintf(" %q", *w.reason)
	}
	if w.reasonHas != "" {
		s += fmt.Sprintf(" (reason names %q)", w.reasonHas)
	}
	if w.orEmpty {
		s += " or empty"
	}
	return s
}

func (w closeWant) check(code int, reason string) error {
	switch {
	case code != w.code && (w.alt == 0 || code != w.alt):
		return fmt.Errorf("code %d (reason %q), want %v", code, reason, w)
	case w.reason != nil && reason != *w.reason:
		return fmt.Errorf("reason %q, want %q", reason, *w.reason)
	case !strings.Contains(reason, w.reasonHas):
		return fmt.Errorf("reason %q does not contain %q", reason, w.reasonHas)
	}
	return nil
}

// want returns the Close frame and the reason a closeAnswer asks for.
func (a closeAnswer) want() (wire, api closeWant) {
	wire, api = closeWant{code: a.wire, alt: a.alt}, closeWant{code: a.api, alt: a.alt}
	if a.echo {
		wire.reason, api.reason = str(a.reason), str(a.reason)
	}
	return wire, api
}

// expectClose requires the next frame to be a Close frame matching w and
// returns its payload.
func (p *peer) expectClose(w closeWant) []byte {
	p.t.Helper()
	f := p.nextFrame()
	for p.streamed && f.op <= opBinary { // a streamed echo's first fragments
		f = p.nextFrame()
	}
	if f.op != opClose {
		p.t.Fatalf("want Close %v, got %v", w, f)
	}
	if len(f.payload) == 0 && w.orEmpty {
		return f.payload
	}
	code, reason, ok := parseClose(f.payload)
	if !ok || len(f.payload) == 0 {
		p.t.Fatalf("want Close %v, got Close payload %q", w, f.payload)
	}
	if err := w.check(code, reason); err != nil {
		p.t.Errorf("wsconn sent Close with %v", err)
	}
	return f.payload
}

// expectEOF requires wsconn to close TCP with no further frame.
func (p *peer) expectEOF() {
	p.t.Helper()
	f, err := p.next()
	switch {
	case err == nil:
		p.t.Fatalf("want EOF, got frame %v", f)
	case !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET):
		p.t.Fatalf("want EOF, got %v", err)
	}
}

// finish ends a case after the Close frames were exchanged: the server
// closes TCP first (RFC 6455 §7.1.1), so as the client we wait for EOF, as
// the server we close once we started the closing handshake ourselves.
func (p *peer) finish() {
	p.t.Helper()
	if !p.client && p.sentClose {
		p.conn.Close()
		return
	}
	p.expectEOF()
}

func short(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q… (%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// appResult is what the application side of a case saw.
type appResult struct {
	err    error // the error that ended the receive loop
	reason wsconn.CloseReason
	set    bool // CloseReason reported closing
	done   bool // Done was closed
}

// echoLoop is the application of every case: it sends back each message it
// receives until Receive fails, then waits for the connection to be done.
// It receives with ctx, the case's context, not the handler's (which ends
// when the connection closes and would race with Receive's own error).
func echoLoop(ctx context.Context, c *wsconn.Conn) appResult {
	var res appResult
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			res.err = err
			break
		}
		// A failed Send means closing has started: Receive tells why.
		c.Send(ctx, m)
	}
	select {
	case <-c.Done():
		res.done = true
	case <-ctx.Done():
	}
	res.reason, res.set = c.CloseReason()
	return res
}

// checkApp checks that the application saw the connection end with w.
func checkApp(t testing.TB, res appResult, w closeWant) {
	t.Helper()
	var ce *wsconn.ConnectionClosedError
	if !errors.As(res.err, &ce) {
		t.Errorf("Receive returned %v, want a *wsconn.ConnectionClosedError with %v", res.err, w)
		return
	}
	if err := w.check(int(ce.Reason.Code), ce.Reason.Reason); err != nil {
		t.Errorf("Receive's ConnectionClosedError has %v", err)
	}
	if !res.done {
		t.Errorf("the connection was not done before the case's deadline")
	}
	if !res.set || res.reason != ce.Reason {
		t.Errorf("CloseReason() = %v, %t; want %v, true as Receive reported", res.reason, res.set, ce.Reason)
	}
}

// setup connects a raw peer to wsconn in the given role ("server": wsconn
// serves and the peer is a raw client; "client": wsconn dials a raw
// server). The app side runs echoLoop (or the app in ctx: appFor); its
// result arrives on the channel.
// With ext set, wsconn has compression on and the raw peer offers ext (as
// the client) or answers with it (as the server); permessage-deflate must
// then be negotiated.
func setup(t *testing.T, ctx context.Context, role string, maxSize int64, ext string) (*peer, <-chan appResult) {
	t.Helper()
	var p *peer
	var results <-chan appResult
	if role == "server" {
		p, results = setupServer(t, ctx, maxSize, ext)
	} else {
		p, results = setupClient(t, ctx, maxSize, ext)
	}
	p.deflate = ext != ""
	return p, results
}

// compressionFor is wsconn's Compression option for a case offering ext.
func compressionFor(ext string) wsconn.CompressionMode {
	if ext == "" {
		return wsconn.CompressionDisabled
	}
	return wsconn.CompressionNoContextTakeover
}

func setupServer(t *testing.T, ctx context.Context, maxSize int64, ext string) (*peer, <-chan appResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan appResult, 1)
	srv := wsconn.NewServer(func(hctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(hctx, nil)
		if err != nil {
			results <- appResult{err: err}
			return err
		}
		results <- appFor(ctx)(ctx, c)
		return nil
	}, &wsconn.ServerOptions{
		ConnectTimeout:    caseTimeout,
		DisconnectTimeout: 5 * time.Second,
		MaxMessageSize:    maxSize,
		Compression:       compressionFor(ext),
	})
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		cancel()
		awaitCleanup(t, served, "Server.Serve to return")
	})

	conn, br := dialRawExt(t, ctx, ln.Addr().String(), ext)
	return newPeer(t, ctx, conn, br, true), results
}

// dialRaw connects to a wsconn server at addr and does the opening
// handshake by hand.
func dialRaw(t testing.TB, ctx context.Context, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	return dialRawExt(t, ctx, addr, "")
}

// dialRawExt is dialRaw offering the extensions ext, which the server must
// accept (as permessage-deflate) when ext is not empty.
func dialRawExt(t testing.TB, ctx context.Context, addr, ext string) (net.Conn, *bufio.Reader) {
	t.Helper()
	offer := ""
	if ext != "" {
		offer = "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(deadline(ctx))
	key := base64.StdEncoding.EncodeToString([]byte("conformance-key!"))
	fmt.Fprintf(conn, "GET /conformance HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n", addr, key, offer)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		t.Fatalf("failed to read the handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(key) {
		conn.Close()
		t.Fatalf("bad handshake response: %d %v", resp.StatusCode, resp.Header)
	}
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); (got != "") != (ext != "") || ext != "" && !strings.HasPrefix(got, "permessage-deflate") {
		conn.Close()
		t.Fatalf("offered extensions %q, the server answered %q", ext, got)
	}
	return conn, br
}

func setupClient(t *testing.T, ctx context.Context, maxSize int64, ext string) (*peer, <-chan appResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	results := make(chan appResult, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		c, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String()+"/conformance", &wsconn.DialOptions{
			DisconnectTimeout: 5 * time.Second,
			MaxMessageSize:    maxSize,
			Compression:       compressionFor(ext),
		})
		if err != nil {
			results <- appResult{err: err}
			return
		}
		results <- appFor(ctx)(ctx, c)
		c.Close(ctx, wsconn.StatusNormalClosure, "")
	}()
	t.Cleanup(func() { awaitCleanup(t, exited, "the dialing application to return") })

	conn, br := acceptHandshake(t, ctx, ln)
	writeUpgradeResponseExt(conn, ext)
	return newPeer(t, ctx, conn, br, false), results
}

// writeUpgradeResponse accepts the upgrade request read by acceptHandshake
// with a valid 101 response.
func writeUpgradeResponse(conn *handshakeConn) { writeUpgradeResponseExt(conn, "") }

// writeUpgradeResponseExt is writeUpgradeResponse accepting extensions ext.
func writeUpgradeResponseExt(conn *handshakeConn, ext string) {
	if ext != "" {
		ext = "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: %s\r\n%s\r\n", acceptKey(conn.key), ext)
}

// handshakeConn is an accepted TCP connection whose upgrade request was read.
type handshakeConn struct {
	net.Conn
	key string
}

// acceptHandshake accepts one connection on ln and reads wsconn's upgrade
// request, checking it is a valid one.
func acceptHandshake(t *testing.T, ctx context.Context, ln net.Listener) (*handshakeConn, *bufio.Reader) {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(deadline(ctx))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("wsconn did not connect: %v", err)
	}
	conn.SetDeadline(deadline(ctx))
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		conn.Close()
		t.Fatalf("failed to read the upgrade request: %v", err)
	}
	key := req.Header.Get("Sec-WebSocket-Key")
	if req.Method != http.MethodGet || !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") ||
		!strings.Contains(strings.ToLower(req.Header.Get("Connection")), "upgrade") ||
		req.Header.Get("Sec-WebSocket-Version") != "13" || len(key) != 24 {
		conn.Close()
		t.Fatalf("bad upgrade request: %s %v", req.Method, req.Header)
	}
	return &handshakeConn{conn, key}, br
}

// cleanupTimeout bounds each wait for wsconn's goroutines when a test ends.
const cleanupTimeout = 10 * time.Second

// awaitCleanup waits for ch to yield or close, failing the test if wsconn
// does not let go within cleanupTimeout.
func awaitCleanup[T any](t testing.TB, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(cleanupTimeout):
		t.Errorf("timed out after %v waiting for %s", cleanupTimeout, what)
	}
}

// waitApp returns the app side's result, bounded by the case's context.
func waitApp(t testing.TB, ctx context.Context, results <-chan appResult) appResult {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-ctx.Done():
		t.Fatalf("the application side did not finish: %v", ctx.Err())
		return appResult{}
	}
}
