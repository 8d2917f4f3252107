package wstest

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// Listen returns a TCP listener on a free port of 127.0.0.1, closed when the
// test ends.
func Listen(t TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// A Server is a wsconn.Server running for a test; see [Serve].
type Server struct {
	// URL is the server's ws:// URL, ending in "/".
	URL string
	// Addr is its listener's address, host:port for TCP.
	Addr string

	t      TB
	cancel context.CancelFunc
	served chan error
	once   sync.Once
}

// Serve runs wsconn.NewServer(h, opts).Serve on ln — on a new 127.0.0.1
// listener when ln is nil — until [Server.Stop] or the end of the test.
func Serve(t TB, ln net.Listener, h wsconn.Handler, opts *wsconn.ServerOptions) *Server {
	t.Helper()
	if ln == nil {
		ln = Listen(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		URL:    "ws://" + ln.Addr().String() + "/",
		Addr:   ln.Addr().String(),
		t:      t,
		cancel: cancel,
		served: make(chan error, 1),
	}
	srv := wsconn.NewServer(h, opts)
	go func() { s.served <- srv.Serve(ctx, ln) }()
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down and waits, up to [Timeout], for Serve to
// return; the test fails unless Serve returns context.Canceled, the error
// of a server stopped by its context. Stop may be called more than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cancel()
		timer := time.NewTimer(Timeout)
		defer timer.Stop()
		select {
		case err := <-s.served:
			if !errors.Is(err, context.Canceled) {
				s.t.Errorf("Serve returned %v, want context.Canceled", err)
			}
		case <-timer.C:
			s.t.Errorf("Serve did not return within %v of the shutdown", Timeout)
		}
	})
}

// Echo is a handler that accepts the connection and sends every message
// back until the connection ends. It returns nil then: the peer leaving is
// the expected end.
func Echo(ctx context.Context, r *wsconn.Request) error {
	c, err := r.Accept(ctx, nil)
	if err != nil {
		return err
	}
	EchoConn(ctx, c)
	return nil
}

// EchoConn sends every message received on c back, until receiving or
// sending fails, and returns that error.
func EchoConn(ctx context.Context, c *wsconn.Conn) error {
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		if err := c.Send(ctx, m); err != nil {
			return err
		}
	}
}

// Dial connects to url, failing the test if it cannot within ctx and
// [Timeout]. The connection is closed (1000) when the test ends.
func Dial(t TB, ctx context.Context, url string, opts *wsconn.DialOptions) *wsconn.Conn {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	c, err := wsconn.Dial(dctx, url, opts)
	if err != nil {
		t.Fatalf("Dial(%s): %v", url, err)
	}
	t.Cleanup(func() { closeConn(c) })
	return c
}

func closeConn(c *wsconn.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	c.Close(ctx, wsconn.StatusNormalClosure, "")
}

// Pair returns the two ends of a connection: a client dialled to a server
// on 127.0.0.1 (with opts), and the server's end of it. The server's
// handler keeps its end open until the connection or the server ends; the
// test does the reading on both ends. Both ends are closed, and the server
// stopped, when the test ends.
func Pair(t TB, ctx context.Context, opts *wsconn.ServerOptions) (client, server *wsconn.Conn) {
	t.Helper()
	conns := make(chan *wsconn.Conn, 1)
	s := Serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		conns <- c
		<-ctx.Done() // the connection closed, or the server shut down
		return nil
	}, opts)
	client = Dial(t, ctx, s.URL, nil)
	return client, Recv(t, ctx, conns)
}
