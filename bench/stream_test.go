package bench_test

// The streaming group: one 16 MiB message streamed by wsconn's Reader and
// Writer against coder/websocket's Reader and Writer and gorilla's
// NextReader and NextWriter (each library's defaults, but no read limit),
// and 8 MiB each way through wsconn's NetConn against coder's NetConn.
// Client and server run in this process. In the Stream benchmarks the
// server side is the same for every library and allocates nothing (raw
// frames written from memory; gorilla's NextReader read into io.Discard),
// so B/op and the peak heap are the streaming client's; in NetConnCopy
// both ends are the library's.
//
//	go test -run '^$' -bench 'Stream|NetConnCopy' -count 5 .
//
// gives the figures of bench/README.md ("Streaming"): MB/s, B/op, and
// peak-heap-KiB, the most the live heap grew above its level before the
// loop (sampled every 100 µs with runtime/metrics).

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
	"github.com/wsnursery/wsnursery/wsconn"
)

const (
	streamSize  = 16 << 20
	streamChunk = 64 << 10 // the writes of a Writer, the frames of the source
	copySize    = 8 << 20
)

// streamLibs are the libraries of the Stream benchmarks, baseline first.
var streamLibs = []string{"gorilla", "coder", "wsconn"}

// streamer is one library's client connection, through its streaming API.
type streamer interface {
	sendText(ctx context.Context, s string) error
	receive(ctx context.Context) error // one whole message
	reader(ctx context.Context) (io.Reader, error)
	writer(ctx context.Context) (io.WriteCloser, error)
	close()
}

func dialStreamer(ctx context.Context, lib, url string) (streamer, error) {
	switch lib {
	case "gorilla":
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
		if err != nil {
			return nil, err
		}
		return gorillaStreamer{ws}, nil
	case "coder":
		c, _, err := coder.Dial(ctx, url, nil)
		if err != nil {
			return nil, err
		}
		c.SetReadLimit(-1)
		return coderStreamer{c}, nil
	case "wsconn":
		c, err := wsconn.Dial(ctx, url, &wsconn.DialOptions{MaxMessageSize: -1})
		if err != nil {
			return nil, err
		}
		return wsconnStreamer{c}, nil
	}
	return nil, errors.New("unknown library " + lib)
}

type gorillaStreamer struct{ ws *websocket.Conn }

func (s gorillaStreamer) sendText(_ context.Context, m string) error {
	return s.ws.WriteMessage(websocket.TextMessage, []byte(m))
}
func (s gorillaStreamer) receive(context.Context) error { _, _, err := s.ws.ReadMessage(); return err }
func (s gorillaStreamer) reader(context.Context) (io.Reader, error) {
	_, r, err := s.ws.NextReader()
	return r, err
}
func (s gorillaStreamer) writer(context.Context) (io.WriteCloser, error) {
	return s.ws.NextWriter(websocket.BinaryMessage)
}
func (s gorillaStreamer) close() {
	s.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	s.ws.Close()
}

type coderStreamer struct{ c *coder.Conn }

func (s coderStreamer) sendText(ctx context.Context, m string) error {
	return s.c.Write(ctx, coder.MessageText, []byte(m))
}
func (s coderStreamer) receive(ctx context.Context) error { _, _, err := s.c.Read(ctx); return err }
func (s coderStreamer) reader(ctx context.Context) (io.Reader, error) {
	_, r, err := s.c.Reader(ctx)
	return r, err
}
func (s coderStreamer) writer(ctx context.Context) (io.WriteCloser, error) {
	return s.c.Writer(ctx, coder.MessageBinary)
}
func (s coderStreamer) close() { s.c.Close(coder.StatusNormalClosure, "") }

type wsconnStreamer struct{ c *wsconn.Conn }

func (s wsconnStreamer) sendText(ctx context.Context, m string) error { return s.c.SendText(ctx, m) }
func (s wsconnStreamer) receive(ctx context.Context) error            { _, err := s.c.Receive(ctx); return err }
func (s wsconnStreamer) reader(ctx context.Context) (io.Reader, error) {
	_, r, err := s.c.Reader(ctx)
	return r, err
}
func (s wsconnStreamer) writer(ctx context.Context) (io.WriteCloser, error) {
	return s.c.Writer(ctx, wsconn.Binary)
}
func (s wsconnStreamer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.c.Close(ctx, wsconn.StatusNormalClosure, "")
}

// streamHTTP serves h on a loopback port until the benchmark ends.
func streamHTTP(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { hs.Serve(ln); close(done) }()
	tb.Cleanup(func() { hs.Close(); <-done })
	return "ws://" + ln.Addr().String()
}

// streamServer is the server of the Stream benchmarks. On "source" it
// answers each text message with a 16 MiB binary message of 64 KiB frames
// written from memory; on "sink" it reads each message into io.Discard and
// answers "ok".
func streamServer(tb testing.TB) string {
	frames := sourceFrames()
	up := websocket.Upgrader{}
	var wg sync.WaitGroup
	tb.Cleanup(wg.Wait)
	return streamHTTP(tb, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.Close()
		buf := make([]byte, streamChunk)
		for {
			_, m, err := ws.NextReader()
			if err != nil {
				return
			}
			if r.URL.Path == "/source" {
				io.Copy(io.Discard, m)
				if _, err := ws.NetConn().Write(frames); err != nil {
					return
				}
				continue
			}
			if _, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, m, buf); err != nil {
				return
			}
			if err := ws.WriteMessage(websocket.TextMessage, []byte("ok")); err != nil {
				return
			}
		}
	}))
}

// sourceFrames encodes the 16 MiB message as a server sends it.
func sourceFrames() []byte {
	payload := make([]byte, streamChunk)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	var b []byte
	for i := 0; i < streamSize/streamChunk; i++ {
		op := byte(0) // continuation
		if i == 0 {
			op = 2
		}
		if i == streamSize/streamChunk-1 {
			op |= 0x80
		}
		b = binary.BigEndian.AppendUint64(append(b, op, 127), streamChunk)
		b = append(b, payload...)
	}
	return b
}

// heapPeak samples the live heap until stop and reports how far it rose
// above where it was at the start.
type heapPeak struct {
	stop chan struct{}
	done chan uint64
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	h := &heapPeak{stop: make(chan struct{}), done: make(chan uint64, 1)}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	base := s[0].Value.Uint64()
	go func() {
		var peak uint64
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > base {
				peak = max(peak, v-base)
			}
			select {
			case <-h.stop:
				h.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapPeak) report(b *testing.B) {
	close(h.stop)
	b.ReportMetric(float64(<-h.done)/1024, "peak-heap-KiB")
}

func BenchmarkStreamRead(b *testing.B) {
	url := streamServer(b) + "/source"
	for _, lib := range streamLibs {
		b.Run("16MiB/"+lib, func(b *testing.B) {
			ctx := context.Background()
			s, err := dialStreamer(ctx, lib, url)
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			buf := make([]byte, 32<<10)
			b.SetBytes(streamSize)
			b.ReportAllocs()
			hp := startHeapPeak()
			b.ResetTimer()
			for range b.N {
				if err := readOneStream(ctx, s, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			hp.report(b)
		})
	}
}

func readOneStream(ctx context.Context, s streamer, buf []byte) error {
	if err := s.sendText(ctx, "go"); err != nil {
		return err
	}
	r, err := s.reader(ctx)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, r, buf)
	if err == nil && n != streamSize {
		err = errors.New("short message")
	}
	return err
}

func BenchmarkStreamWrite(b *testing.B) {
	url := streamServer(b) + "/sink"
	chunk := make([]byte, streamChunk)
	for _, lib := range streamLibs {
		b.Run("16MiB/"+lib, func(b *testing.B) {
			ctx := context.Background()
			s, err := dialStreamer(ctx, lib, url)
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			b.SetBytes(streamSize)
			b.ReportAllocs()
			hp := startHeapPeak()
			b.ResetTimer()
			for range b.N {
				if err := writeOneStream(ctx, s, chunk); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			hp.report(b)
		})
	}
}

func writeOneStream(ctx context.Context, s streamer, chunk []byte) error {
	w, err := s.writer(ctx)
	if err != nil {
		return err
	}
	for i := 0; i < streamSize/len(chunk); i++ {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return s.receive(ctx) // "ok": the server has it all
}

// netConnPair is a client NetConn to a server that echoes through its
// own NetConn with io.Copy, both of the same library.
func netConnPair(tb testing.TB, ctx context.Context, lib string) net.Conn {
	tb.Helper()
	var wg sync.WaitGroup
	tb.Cleanup(wg.Wait)
	switch lib {
	case "coder":
		url := streamHTTP(tb, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := coder.Accept(w, r, nil)
			if err != nil {
				return
			}
			wg.Add(1)
			defer wg.Done()
			nc := coder.NetConn(r.Context(), c, coder.MessageBinary)
			io.Copy(nc, nc)
			nc.Close()
		}))
		c, _, err := coder.Dial(ctx, url, nil)
		if err != nil {
			tb.Fatal(err)
		}
		return coder.NetConn(ctx, c, coder.MessageBinary)
	case "wsconn":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		sctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			nc := wsconn.NetConn(ctx, c, wsconn.Binary)
			io.Copy(nc, nc)
			return nc.Close()
		}, nil)
		go func() { served <- srv.Serve(sctx, ln) }()
		tb.Cleanup(func() { cancel(); <-served })
		c, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String(), nil)
		if err != nil {
			tb.Fatal(err)
		}
		return wsconn.NetConn(ctx, c, wsconn.Binary)
	}
	tb.Fatal("unknown library " + lib)
	return nil
}

// copyBothWays writes n bytes through nc with io.Copy while reading the n
// echoed bytes back.
func copyBothWays(nc net.Conn, src []byte, n int64) error {
	wrote := make(chan error, 1)
	go func() {
		var err error
		for left := n; left > 0 && err == nil; left -= int64(len(src)) {
			_, err = nc.Write(src[:min(int64(len(src)), left)])
		}
		wrote <- err
	}()
	got, err := io.CopyN(io.Discard, nc, n)
	if werr := <-wrote; err == nil {
		err = werr
	}
	if err == nil && got != n {
		err = errors.New("short echo")
	}
	return err
}

func BenchmarkNetConnCopy(b *testing.B) {
	src := make([]byte, 32<<10) // io.Copy's buffer size
	for _, lib := range []string{"coder", "wsconn"} {
		b.Run("8MiB/"+lib, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			nc := netConnPair(b, ctx, lib)
			defer nc.Close()
			b.SetBytes(2 * copySize) // each way
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := copyBothWays(nc, src, copySize); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestStreamHarness runs every library through the harness once, small,
// so that the benchmarks' harness is checked by a normal test run.
func TestStreamHarness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, sink := streamServer(t)+"/source", streamServer(t)+"/sink"
	buf, chunk := make([]byte, 32<<10), make([]byte, streamChunk)
	for _, lib := range streamLibs {
		for _, url := range []string{src, sink} {
			s, err := dialStreamer(ctx, lib, url)
			if err != nil {
				t.Fatal(err)
			}
			if url == src {
				err = readOneStream(ctx, s, buf)
			} else {
				err = writeOneStream(ctx, s, chunk)
			}
			s.close()
			if err != nil {
				t.Fatalf("%s %s: %v", lib, url, err)
			}
		}
	}
	for _, lib := range []string{"coder", "wsconn"} {
		nc := netConnPair(t, ctx, lib)
		if err := copyBothWays(nc, make([]byte, 32<<10), 1<<20); err != nil {
			t.Fatalf("%s NetConn: %v", lib, err)
		}
		nc.Close()
	}
}
