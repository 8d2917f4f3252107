package wsconn_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/wsconn"
)

// io.Copy moves 8 MiB each way through NetConn over real TCP, byte-exact:
// the server echoes with io.Copy(nc, nc) until the client's Close (which
// the server's Read sees as io.EOF); the addresses are the TCP ones.
func TestNetConnCopyBothWays(t *testing.T) {
	const size = 8 << 20
	serverAddrs := make(chan [2]net.Addr, 1)
	echoed := make(chan error, 1)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		nc := wsconn.NetConn(ctx, c, wsconn.Binary)
		serverAddrs <- [2]net.Addr{nc.LocalAddr(), nc.RemoteAddr()}
		n, err := io.Copy(nc, nc)
		if err == nil && n != size {
			err = errors.New("server echoed the wrong number of bytes")
		}
		echoed <- err
		return nil
	}, nil)
	ctx := ctxTimeout(t, 60*time.Second)
	c := dial(t, url, nil)
	nc := wsconn.NetConn(ctx, c, wsconn.Binary)

	wrote := make(chan error, 1)
	go func() {
		_, err := io.Copy(nc, &patternReader{n: size})
		wrote <- err
	}()
	var chk patternChecker
	if _, err := io.CopyN(&chk, nc, size); err != nil {
		t.Fatal(err)
	}
	chk.check(t, size)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := nc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-echoed; err != nil {
		t.Fatalf("server: %v", err)
	}
	if r := closeReason(t, c); r.Code != wsconn.StatusNormalClosure {
		t.Fatalf("close reason %v, want 1000", r)
	}
	if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
	}

	addrs := <-serverAddrs
	local, ok := nc.LocalAddr().(*net.TCPAddr)
	if !ok || nc.RemoteAddr().(*net.TCPAddr) == nil {
		t.Fatalf("addresses %T %T, want *net.TCPAddr", nc.LocalAddr(), nc.RemoteAddr())
	}
	if local.String() != addrs[1].String() || nc.RemoteAddr().String() != addrs[0].String() {
		t.Fatalf("client %v→%v, server %v←%v", nc.LocalAddr(), nc.RemoteAddr(), addrs[0], addrs[1])
	}
}

func wantTimeout(t *testing.T, err error) {
	t.Helper()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want a net.Error with Timeout() true", err)
	}
}

// A read deadline in the past fails Read with a timeout even when data is
// ready, and does not close the WebSocket: cleared, Read goes on. A
// deadline that passes mid-message loses nothing of it.
func TestNetConnReadDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		rest := make(chan struct{})
		// The long message starts only once NetConn has read "ready": a
		// message that began before the connection streamed is read ahead
		// in 64 KiB steps, and this peer withholds the rest of it.
		long := make(chan struct{})
		url := rawPeer(t, ln, func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.BinaryMessage, []byte("ready"))
			<-long
			w, _ := ws.NextWriter(websocket.BinaryMessage)
			io.CopyN(w, &patternReader{n: 300_000}, 200_000) // flushed but for the last 4 KiB
			<-rest
			io.Copy(w, &patternReader{off: 200_000, n: 300_000})
			w.Close()
			ws.ReadMessage() // until the client closes
		})
		c, err := wsconn.Dial(context.Background(), url, &wsconn.DialOptions{NetDialContext: ln.Dial})
		if err != nil {
			t.Fatal(err)
		}
		nc := wsconn.NetConn(context.Background(), c, wsconn.Binary)
		synctest.Wait() // "ready" has arrived

		nc.SetReadDeadline(time.Now().Add(-time.Second))
		_, err = nc.Read(make([]byte, 10))
		wantTimeout(t, err)
		nc.SetReadDeadline(time.Time{})
		b := make([]byte, 5)
		if _, err := io.ReadFull(nc, b); err != nil || string(b) != "ready" {
			t.Fatalf("Read after clearing the deadline = %q, %v", b, err)
		}
		close(long)

		var chk patternChecker
		if _, err := io.CopyN(&chk, nc, 150_000); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(time.Second))
		_, err = io.Copy(&chk, nc) // until the deadline
		wantTimeout(t, err)
		if chk.off >= 200_000 {
			t.Fatalf("read %d bytes before the peer sent them", chk.off)
		}
		close(rest)
		nc.SetReadDeadline(time.Time{})
		if _, err := io.CopyN(&chk, nc, 300_000-chk.off); err != nil {
			t.Fatal(err)
		}
		chk.check(t, 300_000)
		if err := c.Ping(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if err := nc.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// A deadline set while a Read waits applies to that Read.
func TestNetConnDeadlineInterruptsRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := orderedPeer(t)
		nc := wsconn.NetConn(context.Background(), c, wsconn.Binary)
		errc := make(chan error)
		go func() {
			_, err := nc.Read(make([]byte, 10))
			errc <- err
		}()
		synctest.Wait()
		nc.SetReadDeadline(time.Now().Add(time.Second))
		start := time.Now()
		wantTimeout(t, <-errc)
		if d := time.Since(start); d != time.Second {
			t.Fatalf("Read timed out after %v, want 1s", d)
		}

		// Write deadlines: one in the past sends nothing and fails with a
		// timeout; the connection stays open.
		nc.SetWriteDeadline(time.Now().Add(-time.Second))
		_, err := nc.Write([]byte("late"))
		wantTimeout(t, err)
		nc.SetWriteDeadline(time.Time{})
		if _, err := nc.Write([]byte("on time")); err != nil {
			t.Fatal(err)
		}
		if err := nc.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// NetConn's Close closes the WebSocket with 1000, which the peer sees.
func TestNetConnCloseSends1000(t *testing.T) {
	saw := make(chan error, 1)
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		_, _, err := ws.ReadMessage()
		saw <- err
	})
	c := dial(t, url, nil)
	nc := wsconn.NetConn(context.Background(), c, wsconn.Binary)
	if err := nc.Close(); err != nil {
		t.Fatal(err)
	}
	var ce *websocket.CloseError
	if err := <-saw; !errors.As(err, &ce) || ce.Code != 1000 {
		t.Fatalf("peer read %v, want Close 1000", err)
	}
	if _, err := nc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
}

// A message of the other type closes the connection with 1003.
func TestNetConnWrongMessageType(t *testing.T) {
	saw := make(chan error, 1)
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.WriteMessage(websocket.TextMessage, []byte("text"))
		_, _, err := ws.ReadMessage()
		saw <- err
	})
	nc := wsconn.NetConn(context.Background(), dial(t, url, nil), wsconn.Binary)
	if _, err := nc.Read(make([]byte, 10)); err == nil {
		t.Fatal("Read of a text message on a binary NetConn succeeded")
	}
	var ce *websocket.CloseError
	if err := <-saw; !errors.As(err, &ce) || ce.Code != 1003 {
		t.Fatalf("peer read %v, want Close 1003", err)
	}
}

// net/http runs over NetConn: an HTTP server on the WebSocket server's
// side, an http.Client whose transport dials through the WebSocket; the
// server's deadlines and background reads work on it.
func TestNetConnHTTP(t *testing.T) {
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello over "+r.URL.Path)
		}),
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
	}
	var wg sync.WaitGroup
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		ln := &oneConnListener{conn: wsconn.NetConn(ctx, c, wsconn.Binary), done: make(chan struct{})}
		wg.Add(1)
		go func() { defer wg.Done(); hs.Serve(ln) }()
		<-c.Done()
		return nil
	}, nil)
	t.Cleanup(func() { hs.Close(); wg.Wait() })
	ctx := ctxTimeout(t, 20*time.Second)
	c := dial(t, url, nil)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return wsconn.NetConn(ctx, c, wsconn.Binary), nil
		},
		MaxConnsPerHost: 1,
	}}
	defer client.CloseIdleConnections()
	for _, path := range []string{"/one", "/two"} { // the same connection, kept alive
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://tunnel"+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "hello over "+path {
			t.Fatalf("GET %s = %q, %v", path, body, err)
		}
	}
}

// oneConnListener hands out one connection, then waits until closed.
type oneConnListener struct {
	mu   sync.Mutex
	conn net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
