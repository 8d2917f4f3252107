package conformance_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wsnursery/wsnursery/internal/pipenet"
	"github.com/wsnursery/wsnursery/wsconn"
)

// fuzzLimit is wsconn's MaxMessageSize in the fuzz targets: small, so that
// the fuzzer reaches 1009.
const fuzzLimit = 1024

// fuzzTimeout bounds one fuzz input: a connection that has not ended by
// then hangs.
const fuzzTimeout = 5 * time.Second

// maxFuzzInput caps the bytes one input writes after the handshake.
const maxFuzzInput = 16 << 10

// echoServer is a wsconn server whose handler echoes every message and
// hands what it saw to the test, by request path.
type echoServer struct {
	addr    string
	pending sync.Map // path → chan appResult
	next    atomic.Int64
}

// startEchoServer serves on ln until the test ends.
func startEchoServer(t testing.TB, ln net.Listener) *echoServer {
	return startEchoServerMode(t, ln, wsconn.CompressionDisabled)
}

// startEchoServerMode is startEchoServer with compression mode.
func startEchoServerMode(t testing.TB, ln net.Listener, mode wsconn.CompressionMode) *echoServer {
	es := &echoServer{addr: ln.Addr().String()}
	srv := wsconn.NewServer(func(hctx context.Context, r *wsconn.Request) error {
		ch, ok := es.pending.Load(r.Path)
		if !ok {
			return errors.New("unexpected request " + r.Path)
		}
		c, err := r.Accept(hctx, nil)
		if err != nil {
			ch.(chan appResult) <- appResult{err: err}
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), fuzzTimeout)
		defer cancel()
		ch.(chan appResult) <- echoLoop(ctx, c)
		return nil
	}, &wsconn.ServerOptions{ConnectTimeout: fuzzTimeout, DisconnectTimeout: fuzzTimeout, MaxMessageSize: fuzzLimit, Compression: mode})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		awaitCleanup(t, served, "Server.Serve to return")
	})
	return es
}

// newPath registers a request path and the channel its handler reports on.
func (es *echoServer) newPath() (string, chan appResult) {
	path := "/fuzz/" + strconv.FormatInt(es.next.Add(1), 10)
	ch := make(chan appResult, 1)
	es.pending.Store(path, ch)
	return path, ch
}

// wireLog is everything wsconn wrote after the handshake, decoded.
type wireLog struct {
	messages []frame
	pongs    [][]byte
	close    []byte // payload of wsconn's Close frame
	closed   bool   // wsconn sent a Close frame
	err      error  // what ended the stream: EOF, a reset, or a protocol error
}

// readAll decodes frames sent by wsconn until the stream ends, checking
// that each is well-formed. fromClient says whether wsconn is the client.
func readAll(br *bufio.Reader, fromClient bool) wireLog {
	var w wireLog
	var msg *frame
	for {
		f, err := readFrame(br)
		if err != nil {
			w.err = err
			return w
		}
		bad := func(format string, args ...any) wireLog {
			w.err = fmt.Errorf("wsconn sent %v: "+format, append([]any{f}, args...)...)
			return w
		}
		switch {
		case w.closed:
			return bad("after its Close frame")
		case f.rsv != 0:
			return bad("reserved bits")
		case f.masked != fromClient:
			return bad("wrong masking")
		case f.op >= 8 && (!f.fin || len(f.payload) > 125):
			return bad("fragmented or oversized control frame")
		}
		switch f.op {
		case opPong:
			w.pongs = append(w.pongs, f.payload)
		case opClose:
			w.closed, w.close = true, f.payload
		case opText, opBinary:
			if msg != nil {
				return bad("new message inside a fragmented one")
			}
			msg = &frame{op: f.op, payload: f.payload}
		case opCont:
			if msg == nil {
				return bad("continuation with nothing to continue")
			}
			msg.payload = append(msg.payload, f.payload...)
		default:
			return bad("unexpected opcode")
		}
		if msg != nil && f.fin && f.op < 8 {
			w.messages = append(w.messages, *msg)
			msg = nil
		}
	}
}

// checkOutcome compares what wsconn did with stream s (as written to it)
// against the reference model.
func checkOutcome(t *testing.T, s []byte, fromClient bool, w wireLog, res appResult) {
	t.Helper()
	want := predict(s, fromClient, fuzzLimit)
	if w.err != nil && !errors.Is(w.err, io.EOF) && !isReset(w.err) {
		t.Fatalf("reading wsconn's frames: %v", w.err)
	}
	if len(w.messages) > len(want.messages) {
		t.Errorf("wsconn echoed %d messages, the stream holds %d", len(w.messages), len(want.messages))
	}
	for i := range min(len(w.messages), len(want.messages)) {
		if g, e := w.messages[i], want.messages[i]; g.op != e.op || !bytes.Equal(g.payload, e.payload) {
			t.Errorf("echoed message %d: op %#x %s, want op %#x %s", i, g.op, short(g.payload), e.op, short(e.payload))
		}
	}
	if len(w.pongs) != len(want.pongs) {
		t.Errorf("wsconn sent %d pongs, want %d", len(w.pongs), len(want.pongs))
	}
	for i := range min(len(w.pongs), len(want.pongs)) {
		if !bytes.Equal(w.pongs[i], want.pongs[i]) {
			t.Errorf("pong %d: %q, want %q", i, w.pongs[i], want.pongs[i])
		}
	}

	// The Close frame on the wire, and what the API reports.
	api := closeWant{code: want.api, alt: want.alt, reason: want.reason}
	switch {
	case want.or1006 && !w.closed:
		api = closeWant{code: 1006}
	case want.end == endEOF:
		if w.closed {
			t.Errorf("wsconn sent Close %q, want none (%+v)", w.close, want)
		}
	case !w.closed:
		t.Errorf("wsconn sent no Close frame, want %d (%+v)", want.wire, want)
	case len(w.close) == 0 && want.orEmpty:
	default:
		code, reason, ok := parseClose(w.close)
		wire := closeWant{code: want.wire, alt: want.alt, reason: want.reason}
		if !ok || len(w.close) == 0 {
			t.Errorf("wsconn sent Close payload %q, want %v", w.close, wire)
		} else if err := wire.check(code, reason); err != nil {
			t.Errorf("wsconn sent Close with %v", err)
		}
	}
	checkApp(t, res, api)
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// fuzzServerStream runs one input against the server: handshake, the
// stream, then half-close, and checks the outcome against the model.
func fuzzServerStream(t *testing.T, es *echoServer, s []byte) {
	path, results := es.newPath()
	defer es.pending.Delete(path)
	conn, err := net.DialTimeout("tcp", es.addr, fuzzTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(fuzzTimeout))
	key := "ZnV6ei1jb25mb3JtYW5jZQ=="
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, es.addr, key)
	br := bufio.NewReader(conn)
	if err := readUpgradeResponse(br, key); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		conn.Write(s) // fails once wsconn closed the connection
		conn.(*net.TCPConn).CloseWrite()
	}()
	w := readAll(br, false)
	<-wrote
	if ne, ok := w.err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("wsconn did not end the connection within %v", fuzzTimeout)
	}
	var res appResult
	select {
	case res = <-results:
	case <-time.After(fuzzTimeout):
		t.Fatalf("the handler did not finish within %v", fuzzTimeout)
	}
	checkOutcome(t, s, true, w, res)
}

func readUpgradeResponse(br *bufio.Reader, key string) error {
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 101 Switching Protocols\r\n" {
		return fmt.Errorf("bad handshake response %q: %v", line, err)
	}
	accepted := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "\r\n" {
			break
		}
		accepted = accepted || line == "Sec-WebSocket-Accept: "+acceptKey(key)+"\r\n"
	}
	if !accepted {
		return errors.New("handshake response without the right Sec-WebSocket-Accept")
	}
	return nil
}

// FuzzServerFrames feeds wsconn's server arbitrary bytes after a valid
// handshake, followed by a masked Close frame and the end of the stream,
// and checks the echoed messages, pongs, Close frame and CloseReason
// against the reference model in model_test.go. A masking key of zero
// keeps payloads readable in the corpus.
func FuzzServerFrames(f *testing.F) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	es := startEchoServer(f, ln)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > maxFuzzInput {
			in = in[:maxFuzzInput]
		}
		s := append(bytes.Clone(in), 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8) // Close 1000
		fuzzServerStream(t, es, s)
	})
}

// FuzzClientFrames is FuzzServerFrames for wsconn's client: a raw server
// answers the upgrade and sends the bytes (unmasked frames are valid) in
// the same write as its 101 response.
func FuzzClientFrames(f *testing.F) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > maxFuzzInput {
			in = in[:maxFuzzInput]
		}
		s := append(bytes.Clone(in), 0x88, 0x02, 0x03, 0xe8) // Close 1000
		ctx, cancel := context.WithTimeout(context.Background(), fuzzTimeout)
		defer cancel()
		results := make(chan appResult, 1)
		go func() {
			c, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String()+"/", &wsconn.DialOptions{
				DisconnectTimeout: fuzzTimeout, MaxMessageSize: fuzzLimit})
			if err != nil {
				results <- appResult{err: err}
				return
			}
			results <- echoLoop(ctx, c)
		}()
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(fuzzTimeout))
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(fuzzTimeout))
		br := bufio.NewReader(conn)
		var key string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == "\r\n" {
				break
			}
			if k, ok := bytes.CutPrefix([]byte(line), []byte("Sec-WebSocket-Key: ")); ok {
				key = string(bytes.TrimSpace(k))
			}
		}
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			acceptKey(key) + "\r\n\r\n"
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			conn.Write(append([]byte(resp), s...))
			conn.(*net.TCPConn).CloseWrite()
		}()
		w := readAll(br, true)
		<-wrote
		if ne, ok := w.err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("wsconn did not end the connection within %v", fuzzTimeout)
		}
		var res appResult
		select {
		case res = <-results:
		case <-time.After(fuzzTimeout):
			t.Fatalf("the application did not finish within %v", fuzzTimeout)
		}
		checkOutcome(t, s, false, w, res)
	})
}

// dialPipe returns the client end of a new in-memory connection to ln.
func dialPipe(t testing.TB, ln *pipenet.Listener) net.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), fuzzTimeout)
	defer cancel()
	c, err := ln.Dial(ctx, "", "")
	if err != nil {
		t.Fatalf("the server did not accept: %v", err)
	}
	return c
}

// startPipeServer starts an echo server on an in-memory listener.
func startPipeServer(f *testing.F) (*echoServer, *pipenet.Listener) {
	ln := pipenet.Listen()
	return startEchoServer(f, ln), ln
}

// pipePeer connects a raw client peer to the in-memory server.
func pipePeer(t *testing.T, es *echoServer, ln *pipenet.Listener) (*peer, <-chan appResult, context.Context) {
	return pipePeerExt(t, es, ln, "")
}

// pipePeerExt is pipePeer offering the extensions ext.
func pipePeerExt(t *testing.T, es *echoServer, ln *pipenet.Listener, ext string) (*peer, <-chan appResult, context.Context) {
	offer := ""
	if ext != "" {
		offer = "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	path, results := es.newPath()
	t.Cleanup(func() { es.pending.Delete(path) })
	ctx, cancel := context.WithTimeout(t.Context(), fuzzTimeout)
	t.Cleanup(cancel)
	conn := dialPipe(t, ln)
	conn.SetDeadline(time.Now().Add(fuzzTimeout))
	key := "ZnV6ei1jb25mb3JtYW5jZQ=="
	br := bufio.NewReader(conn)
	hs := make(chan error, 1)
	go func() {
		_, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: pipe\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n", path, key, offer)
		hs <- err
	}()
	if err := readUpgradeResponse(br, key); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
	p := newPeer(t, ctx, conn, br, true)
	p.deflate = ext != ""
	return p, results, ctx
}

// FuzzClosePayload sends a Close frame with an arbitrary payload: wsconn
// must echo a valid one (code and reason) and fail an invalid one with
// 1002, or 1007 for a reason that is not UTF-8.
func FuzzClosePayload(f *testing.F) {
	es, ln := startPipeServer(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 200 {
			payload = payload[:200]
		}
		p, results, ctx := pipePeer(t, es, ln)
		v := closeVerdict(payload)
		p.write(dataFrame(opClose, payload))
		w, a := v.want()
		w.orEmpty = v.echo && len(payload) == 0
		p.expectClose(w)
		p.expectEOF()
		checkApp(t, waitApp(t, ctx, results), a)
	})
}

// FuzzTextUTF8 sends arbitrary bytes as a text message, cut into fragments
// of cut bytes: wsconn must deliver it unchanged iff it is valid UTF-8, and
// otherwise fail with 1007.
func FuzzTextUTF8(f *testing.F) {
	es, ln := startPipeServer(f)
	f.Fuzz(func(t *testing.T, text []byte, cut uint8) {
		if len(text) > fuzzLimit {
			text = text[:fuzzLimit]
		}
		p, results, ctx := pipePeer(t, es, ln)
		p.write(splitFrames(opText, text, int(cut)+1)...)
		if utf8.Valid(text) {
			p.expectMessage(opText, text)
			p.write(closeFrame(1000, ""))
			p.expectClose(closeWant{code: 1000, reason: str("")})
			p.expectEOF()
			checkApp(t, waitApp(t, ctx, results), closeWant{code: 1000, reason: str("")})
			return
		}
		p.expectClose(closeWant{code: 1007})
		p.write(closeFrame(1007, ""))
		p.expectEOF()
		checkApp(t, waitApp(t, ctx, results), closeWant{code: 1007})
	})
}
