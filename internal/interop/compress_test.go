package interop_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/internal/interop"
	"github.com/wsnursery/wsnursery/wsconn"
)

// The compression scenario ("compress"): the peer echoes every message and
// reports the extensions it negotiated; our side checks Compression(),
// sends a 200 KB JSON message, counts the bytes its echo takes on the
// wire, then runs echoAll.

// bigJSONSize is the size of the JSON message the compression tests send.
const bigJSONSize = 200_000

// bigJSON returns bigJSONSize bytes of JSON records, as an API would send.
func bigJSON() []byte {
	var b bytes.Buffer
	b.WriteString("[")
	for i := 0; b.Len() < bigJSONSize-200; i++ {
		fmt.Fprintf(&b, `{"id":%d,"name":"user-%d","email":"user%d@example.com","active":%t,"roles":["reader","writer"],"score":%d},`,
			i, i, i, i%3 == 0, i*37%1000)
	}
	b.WriteString(`{"end":true}]`)
	for b.Len() < bigJSONSize {
		b.WriteString(" ")
	}
	return b.Bytes()
}

// byteCounter counts bytes read from the wire by the connections it wraps.
type byteCounter struct{ n atomic.Int64 }

type countedConn struct {
	net.Conn
	c *byteCounter
}

func (c countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.c.n.Add(int64(n))
	return n, err
}

type countedListener struct {
	net.Listener
	c *byteCounter
}

func (l countedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countedConn{c, l.c}, nil
}

// compressResult is what one side of the compression scenario saw.
type compressResult struct {
	mode wsconn.CompressionMode
	wire int64 // bytes the echo of bigJSON took on the wire
	err  error
}

// runCompress runs the scenario on c, whose reads wire counts.
func runCompress(ctx context.Context, c *wsconn.Conn, wire *byteCounter) compressResult {
	res := compressResult{mode: c.Compression()}
	big := bigJSON()
	before := wire.n.Load()
	if err := c.SendText(ctx, string(big)); err != nil {
		res.err = fmt.Errorf("send the JSON message: %w", err)
		return res
	}
	m, err := c.Receive(ctx)
	if err != nil || m.Type != wsconn.Text || !bytes.Equal(m.Data, big) {
		res.err = fmt.Errorf("echo of the %d-byte JSON message: %v %d bytes, %v", len(big), m.Type, len(m.Data), err)
		return res
	}
	res.wire = wire.n.Load() - before
	if err := echoAll(ctx, c); err != nil {
		res.err = err
		return res
	}
	res.err = c.Close(ctx, wsconn.StatusNormalClosure, "")
	return res
}

// checkCompress checks one side's result and the peer's report of the
// extensions it negotiated (detail "extensions=...").
func checkCompress(t *testing.T, res compressResult, open interop.Event, want bool) {
	t.Helper()
	if res.err != nil {
		t.Fatal(res.err)
	}
	peerSaw := strings.TrimPrefix(open.Detail, "extensions=")
	wantMode := wsconn.CompressionDisabled
	if want {
		wantMode = wsconn.CompressionNoContextTakeover
	}
	if res.mode != wantMode {
		t.Errorf("Compression() = %v, want %v (the peer reports extensions %q)", res.mode, wantMode, peerSaw)
	}
	if got := strings.Contains(peerSaw, "permessage-deflate"); got != want {
		t.Errorf("the peer reports extensions %q; want permessage-deflate: %t", peerSaw, want)
	}
	t.Logf("the %d-byte JSON message's echo took %d bytes on the wire (compressed: %t)", bigJSONSize, res.wire, want)
	switch {
	case want && res.wire > bigJSONSize/4:
		t.Errorf("compressed, yet the echo took %d bytes on the wire for %d bytes of JSON", res.wire, bigJSONSize)
	case !want && res.wire < bigJSONSize:
		t.Errorf("uncompressed, yet the echo took only %d bytes on the wire for %d bytes", res.wire, bigJSONSize)
	}
}

// compressServer is our server with compression on, running the
// compression scenario for every connection.
type compressServer struct {
	url     string
	results chan compressResult
}

func startCompressServer(t *testing.T, opts *wsconn.ServerOptions) *compressServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wire := &byteCounter{}
	s := &compressServer{url: "ws://" + ln.Addr().String(), results: make(chan compressResult, 4)}
	if opts == nil {
		opts = &wsconn.ServerOptions{}
	}
	opts.MaxMessageSize, opts.DisconnectTimeout = maxMessageSize, disconnectTimeout
	opts.Compression = wsconn.CompressionNoContextTakeover
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			s.results <- compressResult{err: err}
			return err
		}
		s.results <- runCompress(ctx, c, wire)
		return nil
	}, opts)
	serveUntilCleanup(t, srv, countedListener{ln, wire})
	return s
}

func (s *compressServer) result(t *testing.T) compressResult {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(scenarioTimeout):
		t.Fatal("the compression handler did not finish")
	}
	panic("unreachable")
}

// compressingClients says which peer clients offer permessage-deflate.
var compressingClients = map[string]bool{
	"websockets":       true,  // on by default
	"node-ws":          true,  // perMessageDeflate is on by default for clients
	"websocket-client": false, // has no compression
	"trio-websocket":   false, // wsproto's extensions are not exposed
}

// TestCompressionServerAgainstPeerClients: our server with compression on
// negotiates it with every peer client that offers it, and keeps working
// uncompressed with those that do not.
func TestCompressionServerAgainstPeerClients(t *testing.T) {
	for _, pc := range peerClients {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			interop.Need(t, pc.have())
			s := startCompressServer(t, nil)
			p := runPeerClient(t, pc, &goServer{url: s.url}, "compress")
			res := s.result(t)
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()
			checkCompress(t, res, wantEvent(ctx, t, p, "open", "compress"), compressingClients[pc.name])
			if e := wantEvent(ctx, t, p, "closed", "compress"); e.Code != 1000 {
				t.Errorf("peer saw close code %d, want 1000", e.Code)
			}
		})
	}
}

// compressingServers are the peer servers run with compression on, and
// whether they negotiate it.
var compressingServers = []struct {
	peerServer
	compresses bool
}{
	{peerServers[1], true}, // websockets: on by default
	{peerServer{
		name: "node-ws --compress",
		have: peerServers[2].have,
		cmd: func() (string, []string, []string) {
			return "node", []string{"testdata/ws_server.js", "--compress"}, []string{"NODE_PATH=" + interop.NodePath}
		},
	}, true},
	{peerServers[0], false}, // trio-websocket: no extensions
}

// TestCompressionClientAgainstPeerServers: our client with compression on
// negotiates it with the peer servers that support it.
func TestCompressionClientAgainstPeerServers(t *testing.T) {
	for _, ps := range compressingServers {
		t.Run(ps.name, func(t *testing.T) {
			t.Parallel()
			p, base := startPeerServer(t, ps.peerServer)
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()
			wire := &byteCounter{}
			opts := dialOptions()
			opts.Compression = wsconn.CompressionNoContextTakeover
			opts.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return countedConn{c, wire}, nil
			}
			c, err := wsconn.Dial(ctx, base+"/compress", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx, wsconn.StatusNormalClosure, "")
			t.Logf("the server answered Sec-WebSocket-Extensions: %q", c.ResponseHeader().Get("Sec-WebSocket-Extensions"))
			res := runCompress(ctx, c, wire)
			checkCompress(t, res, wantEvent(ctx, t, p, "open", "compress"), ps.compresses)
			if e := wantEvent(ctx, t, p, "closed", "compress"); e.Code != 1000 {
				t.Errorf("peer saw close code %d, want 1000", e.Code)
			}
			wantNoErrorEvents(t, p)
		})
	}
}

// TestCompressionChromium: headless Chromium offers permessage-deflate by
// default; our server negotiates it, and a 200 KB JSON message goes to the
// browser and comes back compressed.
func TestCompressionChromium(t *testing.T) {
	interop.Need(t, interop.HaveChromium())
	t.Parallel()
	page := startPageServer(t)
	s := startCompressServer(t, &wsconn.ServerOptions{
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == page.origin },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	browser, stop := startChromium(t, ctx, page, s.url, "compress")
	defer stop()
	if _, err := page.events.Next(ctx, func(e interop.Event) bool { return e.Event == "done" }); err != nil {
		t.Fatalf("page did not finish: %v\nchromium stderr:\n%s", err, tail(browser.Stderr(), 2000))
	}
	stop()
	res := s.result(t)
	checkCompress(t, res, mustEvent(ctx, t, page.events, "open", "compress"), true)
	if e := mustEvent(ctx, t, page.events, "closed", "compress"); e.Code != 1000 {
		t.Errorf("browser saw close %d %q, want 1000", e.Code, e.Reason)
	}
	for _, e := range page.events.Unconsumed() {
		if e.Event == "error" || e.Event == "unparsed" {
			t.Errorf("page reported %s: %s", e.Event, e.Detail)
		}
	}
}

func mustEvent(ctx context.Context, t *testing.T, events *interop.Events, kind, scenario string) interop.Event {
	t.Helper()
	e, err := events.Next(ctx, is(kind, scenario))
	if err != nil {
		t.Fatalf("no %s event for %s: %v", kind, scenario, err)
	}
	return e
}
