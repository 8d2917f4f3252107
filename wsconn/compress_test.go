package wsconn_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/wsconn"
)

// countingListener counts the bytes its connections read from the wire.
type countingListener struct {
	net.Listener
	read atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{c, &l.read}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// jsonOf returns about n bytes of JSON records, as an API would send.
func jsonOf(n int) []byte {
	var b bytes.Buffer
	b.WriteString("[")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"name":"user-%d","email":"user%d@example.com","active":%t,"score":%d},`, i, i, i, i%3 == 0, i*37%1000)
	}
	b.Truncate(n - 1)
	b.WriteString("]")
	return b.Bytes()
}

// TestCompressionRoundTrip negotiates compression in both roles and checks
// that messages of every size come back intact, that compressible messages
// at or over the threshold shrink on the wire, and that messages under it
// do not.
func TestCompressionRoundTrip(t *testing.T) {
	ln := &countingListener{Listener: listen(t)}
	modes := make(chan wsconn.CompressionMode, 1)
	url := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		modes <- c.Compression()
		echoConn(ctx, c)
		return nil
	}, &wsconn.ServerOptions{Compression: wsconn.CompressionNoContextTakeover})
	c := dial(t, url, &wsconn.DialOptions{Compression: wsconn.CompressionNoContextTakeover})
	if got := c.Compression(); got != wsconn.CompressionNoContextTakeover {
		t.Fatalf("client Compression() = %v, want %v", got, wsconn.CompressionNoContextTakeover)
	}
	if got := within(t, 5*time.Second, modes); got != wsconn.CompressionNoContextTakeover {
		t.Fatalf("server Compression() = %v", got)
	}
	if ext := c.ResponseHeader().Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Errorf("response Sec-WebSocket-Extensions = %q", ext)
	}
	ctx := ctxTimeout(t, 20*time.Second)
	for _, n := range []int{0, 1, 125, 511, 512, 4096, 65535, 65536, 200 << 10, 1 << 20} {
		for _, typ := range []wsconn.MessageType{wsconn.Text, wsconn.Binary} {
			payload := jsonOf(max(n, 2))[:n]
			before := ln.read.Load()
			if err := c.Send(ctx, wsconn.Message{Type: typ, Data: payload}); err != nil {
				t.Fatal(err)
			}
			m, err := c.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != typ || !bytes.Equal(m.Data, payload) {
				t.Fatalf("%v of %d bytes came back as %v of %d bytes", typ, n, m.Type, len(m.Data))
			}
			wire := ln.read.Load() - before
			switch {
			case n < wsconn.DefaultCompressionThreshold && wire < int64(n):
				t.Errorf("%d bytes (under the threshold) took %d bytes on the wire: compressed", n, wire)
			case n >= 4096 && wire > int64(n)/3:
				t.Errorf("%d bytes of JSON took %d bytes on the wire: not compressed", n, wire)
			}
		}
	}
}

// TestCompressionNeedsBothSides: compression is used only when the client
// offers it and the server accepts it.
func TestCompressionNeedsBothSides(t *testing.T) {
	for _, tc := range []struct {
		name           string
		server, client wsconn.CompressionMode
	}{
		{"client only", wsconn.CompressionDisabled, wsconn.CompressionNoContextTakeover},
		{"server only", wsconn.CompressionNoContextTakeover, wsconn.CompressionDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modes := make(chan wsconn.CompressionMode, 1)
			url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
				c, err := r.Accept(ctx, &wsconn.AcceptOptions{Compression: tc.server})
				if err != nil {
					return err
				}
				modes <- c.Compression()
				echoConn(ctx, c)
				return nil
			}, nil)
			c := dial(t, url, &wsconn.DialOptions{Compression: tc.client})
			roundTrip(t, c)
			if got := c.Compression(); got != wsconn.CompressionDisabled {
				t.Errorf("client Compression() = %v", got)
			}
			if got := within(t, 5*time.Second, modes); got != wsconn.CompressionDisabled {
				t.Errorf("server Compression() = %v", got)
			}
			if ext := c.ResponseHeader().Values("Sec-WebSocket-Extensions"); len(ext) != 0 {
				t.Errorf("response carries Sec-WebSocket-Extensions %q", ext)
			}
		})
	}
}

func TestCompressionOptionsInvalid(t *testing.T) {
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		_, err := r.Accept(ctx, &wsconn.AcceptOptions{Compression: wsconn.CompressionNoContextTakeover, CompressionLevel: 12})
		if err == nil || !strings.Contains(err.Error(), "compression level") {
			t.Errorf("Accept with level 12: %v, want an invalid level error", err)
		}
		return err
	}, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := wsconn.Dial(ctx, url, &wsconn.DialOptions{Compression: wsconn.CompressionNoContextTakeover, CompressionLevel: -5}); err == nil || !strings.Contains(err.Error(), "compression level") {
		t.Errorf("Dial with level -5: %v, want an invalid level error", err)
	}
	_, err := wsconn.Dial(ctx, url, &wsconn.DialOptions{Compression: wsconn.CompressionNoContextTakeover})
	var rej *wsconn.ConnectionRejectedError
	if !errors.As(err, &rej) || rej.StatusCode != http.StatusInternalServerError {
		t.Errorf("Dial to a handler whose Accept failed: %v, want a 500 rejection", err)
	}
}

// TestCompressionLevelAndThreshold: a negative threshold compresses even
// short messages; a higher level does not break anything.
func TestCompressionLevelAndThreshold(t *testing.T) {
	ln := &countingListener{Listener: listen(t)}
	url := serve(t, ln, echo, &wsconn.ServerOptions{Compression: wsconn.CompressionNoContextTakeover})
	c := dial(t, url, &wsconn.DialOptions{
		Compression: wsconn.CompressionNoContextTakeover, CompressionLevel: flate.BestCompression, CompressionThreshold: -1,
	})
	ctx := ctxTimeout(t, 10*time.Second)
	payload := bytes.Repeat([]byte("abcd"), 50) // 200 bytes, far under 512
	before := ln.read.Load()
	if err := c.SendBinary(ctx, payload); err != nil {
		t.Fatal(err)
	}
	m, err := c.Receive(ctx)
	if err != nil || !bytes.Equal(m.Data, payload) {
		t.Fatalf("echo: %v, %d bytes", err, len(m.Data))
	}
	if wire := ln.read.Load() - before; wire >= 100 {
		t.Errorf("200 repetitive bytes with threshold -1 took %d bytes on the wire", wire)
	}
}

// rawDeflateClient does the opening handshake by hand, offering offer, and
// returns the connection with the response.
func rawDeflateClient(t *testing.T, url, offer string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	addr := strings.TrimPrefix(url, "ws://")
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: %s\r\n\r\n", addr, offer)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

// maskedFrame encodes a client frame with the given first byte.
func maskedFrame(b0 byte, payload []byte) []byte {
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := [4]byte{1, 2, 3, 4}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// deflated compresses data as one permessage-deflate message: the flushed
// stream without its final 00 00 ff ff (RFC 7692 §7.2.1).
func deflated(t testing.TB, data []byte, level int) []byte {
	var b bytes.Buffer
	fw, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	fw.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// TestServerNegotiationDeclines: the server answers the first offer it can
// honour and declines those it cannot, rather than ignoring their
// parameters as gorilla would.
func TestServerNegotiationDeclines(t *testing.T) {
	modes := make(chan wsconn.CompressionMode, 4)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		modes <- c.Compression()
		return nil
	}, &wsconn.ServerOptions{Compression: wsconn.CompressionNoContextTakeover})
	for _, tc := range []struct {
		offer string
		want  wsconn.CompressionMode
	}{
		{"permessage-deflate; server_max_window_bits=10", wsconn.CompressionDisabled},
		{"permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits", wsconn.CompressionNoContextTakeover},
		{"x-webkit-deflate-frame", wsconn.CompressionDisabled},
		{"permessage-deflate; bogus", wsconn.CompressionDisabled},
	} {
		_, _, resp := rawDeflateClient(t, url, tc.offer)
		ext := resp.Header.Values("Sec-WebSocket-Extensions")
		got := within(t, 5*time.Second, modes)
		if resp.StatusCode != http.StatusSwitchingProtocols || got != tc.want || (len(ext) > 0) != (tc.want != wsconn.CompressionDisabled) {
			t.Errorf("offer %q: status %d, extensions %q, Compression() %v; want %v", tc.offer, resp.StatusCode, ext, got, tc.want)
		}
	}
}

// TestCompressionBomb sends one 64 KiB frame that inflates to 64 MiB to a
// server whose MaxMessageSize is 1 MiB: it must fail the connection with
// 1009 having allocated no more than the limit and its buffers. The bound
// is on TotalAlloc, every byte allocated meanwhile, which is above the
// peak: the reader's doubling buffers sum to under 2×limit, and the flate
// reader and frame buffers to well under 512 KiB.
func TestCompressionBomb(t *testing.T) {
	const limit = 1 << 20
	// 64 copies of 1 MiB of zeros, each deflated to a block that ends
	// byte-aligned with a sync flush, so that the copies concatenate.
	mib := append(deflated(t, make([]byte, 1<<20), flate.BestCompression), 0, 0, 0xff, 0xff)
	bomb := bytes.TrimSuffix(bytes.Repeat(mib, 64), []byte{0, 0, 0xff, 0xff})
	if len(bomb) > 70<<10 {
		t.Fatalf("bomb is %d bytes, want about 64 KiB", len(bomb))
	}
	frame := maskedFrame(0x80|0x40|0x2, bomb)
	closed := make(chan error, 1)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		_, err = c.Receive(ctx)
		closed <- err
		return nil
	}, &wsconn.ServerOptions{Compression: wsconn.CompressionNoContextTakeover, MaxMessageSize: limit})
	conn, br, resp := rawDeflateClient(t, url, "permessage-deflate")
	if resp.Header.Get("Sec-WebSocket-Extensions") == "" {
		t.Fatal("compression not negotiated")
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	err := within(t, 10*time.Second, closed)
	runtime.ReadMemStats(&after)
	wantClosed(t, err, wsconn.StatusMessageTooBig, "*")
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte frame inflating to 64 MiB, limit 1 MiB: %d KiB allocated while it was read", len(bomb), allocated>>10)
	if allocated > 2*limit+512<<10 {
		t.Errorf("allocated %d bytes while reading the bomb, want at most %d (2×limit + 512 KiB)", allocated, 2*limit+512<<10)
	}
	// The server's Close frame: 1009.
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil || hdr[0] != 0x88 {
		t.Fatalf("want a Close frame, got %x, %v", hdr, err)
	}
	payload := make([]byte, hdr[1]&0x7f)
	if _, err := io.ReadFull(br, payload); err != nil || binary.BigEndian.Uint16(payload) != 1009 {
		t.Fatalf("Close payload %q, %v; want code 1009", payload, err)
	}
}

// TestCompressedLengthNotMisjudged: a compressed message whose compressed
// length exceeds MaxMessageSize (random bytes, which deflate expands) but
// whose inflated length does not is accepted: the guard's early check on
// declared lengths allows for deflate's expansion.
func TestCompressedLengthNotMisjudged(t *testing.T) {
	const limit = 64 << 10
	data := make([]byte, limit)
	x := uint64(88172645463325252)
	for i := range data {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		data[i] = byte(x)
	}
	comp := deflated(t, data, flate.BestSpeed)
	if len(comp) <= limit {
		t.Fatalf("random bytes deflated to %d ≤ %d: the test needs expansion", len(comp), limit)
	}
	got := make(chan []byte, 1)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		m, err := c.Receive(ctx)
		if err != nil {
			got <- nil
			return nil
		}
		got <- m.Data
		return nil
	}, &wsconn.ServerOptions{Compression: wsconn.CompressionNoContextTakeover, MaxMessageSize: limit})
	conn, _, _ := rawDeflateClient(t, url, "permessage-deflate")
	if _, err := conn.Write(maskedFrame(0x80|0x40|0x2, comp)); err != nil {
		t.Fatal(err)
	}
	if m := within(t, 10*time.Second, got); !bytes.Equal(m, data) {
		t.Fatalf("received %d bytes, want the %d sent", len(m), len(data))
	}
}

// Over wss, a connection cut inside a TLS record, in the middle of a
// compressed message, is a lost connection (1006): crypto/tls reports the
// cut as the same bare io.ErrUnexpectedEOF that inflate uses for a deflate
// stream cut short, and the transport's failure must win (it used to be
// reported as invalid compressed data, 1007).
func TestTLSCutInCompressedMessageIs1006(t *testing.T) {
	data := deflated(t, make([]byte, 5000), flate.NoCompression) // stored blocks: inflate wants every byte
	up := websocket.Upgrader{EnableCompression: true}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("peer: %v", err)
			return
		}
		tc := ws.NetConn().(*tls.Conn)
		defer tc.NetConn().Close()
		// An unmasked compressed binary frame that promises len(data)
		// bytes, of which only the first 100 arrive.
		frame := append([]byte{0x80 | 0x40 | 0x2, 126, byte(len(data) >> 8), byte(len(data))}, data[:100]...)
		if _, err := tc.Write(frame); err != nil {
			t.Errorf("peer: %v", err)
			return
		}
		// Then the header of a TLS record of 64 bytes and 3 of them, and
		// the TCP connection ends.
		if _, err := tc.NetConn().Write([]byte{0x17, 3, 3, 0, 64, 1, 2, 3}); err != nil {
			t.Errorf("peer: %v", err)
		}
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	ctx := ctxTimeout(t, 10*time.Second)
	c := dial(t, "wss://"+ts.Listener.Addr().String(), &wsconn.DialOptions{
		TLSConfig: &tls.Config{RootCAs: pool}, Compression: wsconn.CompressionNoContextTakeover})
	if c.Compression() == wsconn.CompressionDisabled {
		t.Fatal("compression not negotiated")
	}
	_, err := c.Receive(ctx)
	wantClosed(t, err, wsconn.StatusAbnormalClosure, "*")
}
