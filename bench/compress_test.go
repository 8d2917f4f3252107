package bench_test

// The compression group: permessage-deflate in wsconn against gorilla with
// EnableCompression and coder/websocket in both its modes, all at
// compress/flate's BestSpeed (every library's default level), on a
// realistic JSON payload and on random bytes. Client and server run in
// this process (both ends are counted in allocs/op and idle memory); the
// client's connection counts the bytes on the wire in both directions.
//
//	for i in 1 2 3 4 5; do go test -run '^$' -bench Compress .; done | go run ./cmd/compresstable
//
// prints the table of bench/README.md with medians and ratios against
// gorilla (idle memory against uncompressed wsconn).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
	"github.com/wsnursery/wsnursery/wsconn"
)

// compPayloads are the messages of the compression group.
var compPayloads = []struct {
	name string
	data []byte
}{
	{"json-1KiB", jsonPayload(1 << 10)},
	{"json-64KiB", jsonPayload(64 << 10)},
	{"random-64KiB", randomPayload(64 << 10)},
}

// jsonPayload returns n bytes of JSON records with varied values, as an
// API's responses are: it deflates about 5:1, not 100:1.
func jsonPayload(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"}
	b := []byte("[")
	for len(b) < n {
		b = fmt.Appendf(b, `{"id":%d,"user":"%s-%x","email":"%s%d@example.com","score":%.4f,"active":%t,"tags":["%s","%s"],"ts":"2026-12-%02dT%02d:%02d:%02dZ"},`,
			r.IntN(1e6), words[r.IntN(10)], r.Uint32(), words[r.IntN(10)], r.IntN(1000), r.Float64(), r.IntN(2) == 0,
			words[r.IntN(10)], words[r.IntN(10)], 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	}
	b = b[:n]
	b[n-1] = ']'
	return b
}

func randomPayload(n int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// wireConn counts the bytes its connection reads and writes.
type wireConn struct {
	net.Conn
	n *atomic.Int64
}

func (c wireConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c wireConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// echoConn is one client connection of the compression group.
type echoConn interface {
	Send(ctx context.Context, p []byte) error
	Recv(ctx context.Context) ([]byte, error)
	Close() error
}

type netDial = func(ctx context.Context, network, addr string) (net.Conn, error)

// compLib is one library and mode: its echo server and its client.
type compLib struct {
	name  string
	serve func(ln net.Listener) (stop func())
	dial  func(ctx context.Context, url string, nd netDial) (echoConn, error)
}

const compMaxMessage = 1 << 20

func compLibs() []compLib {
	return []compLib{
		{"gorilla", serveGorilla(true), dialGorilla(true)},
		{"wsconn", serveWsconn(wsconn.CompressionNoContextTakeover), dialWsconn(wsconn.CompressionNoContextTakeover)},
		{"coder-nct", serveCoder(coder.CompressionNoContextTakeover), dialCoder(coder.CompressionNoContextTakeover)},
		{"coder-ct", serveCoder(coder.CompressionContextTakeover), dialCoder(coder.CompressionContextTakeover)},
	}
}

// plainLibs are the uncompressed references of the idle measurement.
func plainLibs() []compLib {
	return []compLib{
		{"wsconn-plain", serveWsconn(wsconn.CompressionDisabled), dialWsconn(wsconn.CompressionDisabled)},
		{"gorilla-plain", serveGorilla(false), dialGorilla(false)},
	}
}

func serveHTTP(ln net.Listener, h http.Handler) func() {
	hs := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { hs.Serve(ln); close(done) }()
	return func() { hs.Close(); <-done }
}

func serveGorilla(compress bool) func(net.Listener) func() {
	up := &websocket.Upgrader{EnableCompression: compress, CheckOrigin: func(*http.Request) bool { return true }}
	return func(ln net.Listener) func() {
		var wg sync.WaitGroup
		stop := serveHTTP(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			wg.Add(1)
			defer wg.Done()
			defer ws.Close()
			for {
				typ, p, err := ws.ReadMessage()
				if err != nil || ws.WriteMessage(typ, p) != nil {
					return
				}
			}
		}))
		return func() { stop(); wg.Wait() }
	}
}

type gorillaEcho struct{ ws *websocket.Conn }

func (c gorillaEcho) Send(_ context.Context, p []byte) error {
	return c.ws.WriteMessage(websocket.BinaryMessage, p)
}
func (c gorillaEcho) Recv(context.Context) ([]byte, error) {
	_, p, err := c.ws.ReadMessage()
	return p, err
}
func (c gorillaEcho) Close() error { return c.ws.Close() }

func dialGorilla(compress bool) func(context.Context, string, netDial) (echoConn, error) {
	return func(ctx context.Context, url string, nd netDial) (echoConn, error) {
		d := websocket.Dialer{EnableCompression: compress, NetDialContext: nd}
		ws, _, err := d.DialContext(ctx, url, nil)
		if err != nil {
			return nil, err
		}
		return gorillaEcho{ws}, nil
	}
}

func serveCoder(mode coder.CompressionMode) func(net.Listener) func() {
	return func(ln net.Listener) func() {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		stop := serveHTTP(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := coder.Accept(w, r, &coder.AcceptOptions{CompressionMode: mode})
			if err != nil {
				return
			}
			wg.Add(1)
			defer wg.Done()
			defer c.CloseNow()
			c.SetReadLimit(compMaxMessage)
			for {
				typ, p, err := c.Read(ctx)
				if err != nil || c.Write(ctx, typ, p) != nil {
					return
				}
			}
		}))
		return func() { cancel(); stop(); wg.Wait() }
	}
}

type coderEcho struct{ c *coder.Conn }

func (c coderEcho) Send(ctx context.Context, p []byte) error {
	return c.c.Write(ctx, coder.MessageBinary, p)
}
func (c coderEcho) Recv(ctx context.Context) ([]byte, error) {
	_, p, err := c.c.Read(ctx)
	return p, err
}
func (c coderEcho) Close() error { return c.c.CloseNow() }

func dialCoder(mode coder.CompressionMode) func(context.Context, string, netDial) (echoConn, error) {
	return func(ctx context.Context, url string, nd netDial) (echoConn, error) {
		c, _, err := coder.Dial(ctx, url, &coder.DialOptions{
			CompressionMode: mode,
			HTTPClient:      &http.Client{Transport: &http.Transport{DialContext: nd}},
		})
		if err != nil {
			return nil, err
		}
		c.SetReadLimit(compMaxMessage)
		return coderEcho{c}, nil
	}
}

func serveWsconn(mode wsconn.CompressionMode) func(net.Listener) func() {
	return func(ln net.Listener) func() {
		srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			for {
				m, err := c.Receive(ctx)
				if err != nil || c.Send(ctx, m) != nil {
					return nil
				}
			}
		}, &wsconn.ServerOptions{Compression: mode, MaxMessageSize: compMaxMessage})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { srv.Serve(ctx, ln); close(done) }()
		return func() { cancel(); <-done }
	}
}

type wsconnEcho struct{ c *wsconn.Conn }

func (c wsconnEcho) Send(ctx context.Context, p []byte) error { return c.c.SendBinary(ctx, p) }
func (c wsconnEcho) Recv(ctx context.Context) ([]byte, error) {
	m, err := c.c.Receive(ctx)
	return m.Data, err
}
func (c wsconnEcho) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.c.Close(ctx, wsconn.StatusNormalClosure, "")
}

func dialWsconn(mode wsconn.CompressionMode) func(context.Context, string, netDial) (echoConn, error) {
	return func(ctx context.Context, url string, nd netDial) (echoConn, error) {
		c, err := wsconn.Dial(ctx, url, &wsconn.DialOptions{Compression: mode, NetDialContext: nd, MaxMessageSize: compMaxMessage})
		if err != nil {
			return nil, err
		}
		return wsconnEcho{c}, nil
	}
}

// startComp starts lib's echo server until b ends and returns its URL.
func startComp(b *testing.B, lib compLib) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(lib.serve(ln))
	return "ws://" + ln.Addr().String() + "/"
}

// dialComp dials lib, counting the client connection's bytes in wire.
func dialComp(b *testing.B, ctx context.Context, lib compLib, url string, wire *atomic.Int64) echoConn {
	b.Helper()
	nd := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wireConn{c, wire}, nil
	}
	c, err := lib.dial(ctx, url, nd)
	if err != nil {
		b.Fatalf("%s: dial: %v", lib.name, err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func compEcho(ctx context.Context, c echoConn, p []byte, n int) error {
	for range n {
		if err := c.Send(ctx, p); err != nil {
			return err
		}
		got, err := c.Recv(ctx)
		if err != nil {
			return err
		}
		if len(got) != len(p) {
			return fmt.Errorf("echo of %d bytes came back with %d", len(p), len(got))
		}
	}
	return nil
}

// compPipeline sends n messages from one goroutine while this one
// receives their echoes.
func compPipeline(ctx context.Context, c echoConn, p []byte, n int) error {
	sent := make(chan error, 1)
	go func() {
		for range n {
			if err := c.Send(ctx, p); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for range n {
		got, err := c.Recv(ctx)
		if err != nil {
			return errors.Join(err, <-sent)
		}
		if len(got) != len(p) {
			return fmt.Errorf("echo of %d bytes came back with %d", len(p), len(got))
		}
	}
	return <-sent
}

// benchComp runs run(b.N) against each library and payload, reporting the
// bytes on the wire per message (one direction) and messages per second.
func benchComp(b *testing.B, run func(ctx context.Context, c echoConn, p []byte, n int) error) {
	ctx := benchCtx(b)
	for _, pl := range compPayloads {
		for _, lib := range compLibs() {
			b.Run(pl.name+"/"+lib.name, func(b *testing.B) {
				var wire atomic.Int64
				c := dialComp(b, ctx, lib, startComp(b, lib), &wire)
				if err := run(ctx, c, pl.data, 50); err != nil {
					b.Fatal(err)
				}
				w0 := wire.Load()
				b.SetBytes(int64(len(pl.data)))
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				if err := run(ctx, c, pl.data, b.N); err != nil {
					b.Fatal(err)
				}
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(wire.Load()-w0)/float64(2*b.N), "wire-B/msg")
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkCompressEcho: one message out, its echo back, one at a time.
// allocs/op count both ends of one round trip.
func BenchmarkCompressEcho(b *testing.B) { benchComp(b, compEcho) }

// BenchmarkCompressPipelined: one goroutine sends b.N messages while
// another receives the echoes.
func BenchmarkCompressPipelined(b *testing.B) { benchComp(b, compPipeline) }

// compIdleConns is how many connections the idle measurement holds.
const compIdleConns = 200

var compIdleCache sync.Map

// BenchmarkCompressIdle: compIdleConns connections, each idle after one
// 64 KiB JSON echo; heap and goroutine stacks of both ends per connection
// (one measurement, whatever b.N). Context takeover keeps a flate window
// per connection and direction on the heap; no-context-takeover keeps
// none, but the goroutines that inflated keep the stacks they grew.
func BenchmarkCompressIdle(b *testing.B) {
	for _, lib := range append(compLibs(), plainLibs()...) {
		b.Run(lib.name, func(b *testing.B) {
			v, ok := compIdleCache.Load(lib.name)
			if !ok {
				v = measureCompIdle(b, lib)
				compIdleCache.Store(lib.name, v)
			}
			r := v.(compIdle)
			b.ReportMetric(r.heap, "idle-heap-B/conn")
			b.ReportMetric(r.stack, "idle-stack-B/conn")
		})
	}
}

type compIdle struct{ heap, stack float64 }

func measureCompIdle(b *testing.B, lib compLib) compIdle {
	ctx := benchCtx(b)
	url := startComp(b, lib)
	p := jsonPayload(64 << 10)
	var wire atomic.Int64
	heap := func() runtime.MemStats {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms
	}
	before := heap()
	conns := make([]echoConn, 0, compIdleConns)
	for range compIdleConns {
		c, err := lib.dial(ctx, url, func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			return wireConn{c, &wire}, err
		})
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if err := compEcho(ctx, c, p, 1); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let servers' handlers block in their reads
	after := heap()
	for _, c := range conns {
		c.Close()
	}
	return compIdle{
		heap:  float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / compIdleConns,
		stack: float64(int64(after.StackInuse)-int64(before.StackInuse)) / compIdleConns,
	}
}
