package wsconn_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wsnursery/wsnursery/internal/pipenet"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/wsconn"
)

func TestMain(m *testing.M) {
	// net/http lingers 500 ms (rstAvoidanceDelay) before closing a
	// connection it refused, such as a 431 for oversized headers, even
	// after Server.Close; that goroutine is net/http's, not a leak of ours.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("net/http.(*conn).closeWriteAndWait"))
}

// serve runs a wsconn.Server for h on ln (a loopback TCP listener when nil)
// and returns its ws:// URL, without the final "/". The server is shut down,
// and Serve's return checked, when the test ends (see wstest.Serve).
func serve(t *testing.T, ln net.Listener, h wsconn.Handler, opts *wsconn.ServerOptions) string {
	t.Helper()
	return strings.TrimSuffix(wstest.Serve(t, ln, h, opts).URL, "/")
}

func listen(t *testing.T) net.Listener { return wstest.Listen(t) }

// echo is a handler that sends every message back until the peer closes.
var echo wsconn.Handler = wstest.Echo

// rawPeer runs a plain gorilla server whose connections are handed to fn,
// for tests that need a peer that misbehaves or is observed frame by frame.
// The connection is closed when fn returns.
func rawPeer(t *testing.T, ln net.Listener, fn func(ws *websocket.Conn)) string {
	t.Helper()
	if ln == nil {
		ln = listen(t)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed bool
	)
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if closed {
			mu.Unlock()
			return
		}
		wg.Add(1)
		mu.Unlock()
		defer wg.Done()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.NetConn().Close()
		fn(ws)
	})}
	done := make(chan struct{})
	go func() { hs.Serve(ln); close(done) }()
	t.Cleanup(func() {
		hs.Close()
		<-done
		mu.Lock()
		closed = true
		mu.Unlock()
		wg.Wait()
	})
	return "ws://" + ln.Addr().String()
}

// dial opens a client connection that is closed when the test ends.
func dial(t *testing.T, url string, opts *wsconn.DialOptions) *wsconn.Conn {
	t.Helper()
	return wstest.Dial(t, context.Background(), url, opts)
}

// newPipeListener is an in-memory listener (see internal/pipenet), so that
// tests under testing/synctest run on virtual time.
func newPipeListener() *pipenet.Listener { return pipenet.Listen() }

// ctxTimeout returns a context bounded for a test step.
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// closeReason returns the close reason or fails if the connection is open.
func closeReason(t *testing.T, c *wsconn.Conn) wsconn.CloseReason {
	t.Helper()
	r, ok := c.CloseReason()
	if !ok {
		t.Fatal("CloseReason: connection still open")
	}
	return r
}

// wantClosed asserts err is a *ConnectionClosedError with code (and reason
// when reason is not "*").
func wantClosed(t *testing.T, err error, code wsconn.StatusCode, reason string) {
	t.Helper()
	wstest.WantClosed(t, err, code, reason)
}
