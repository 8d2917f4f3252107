package wsconn_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/internal/pipenet"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/wsconn"
)

// seenHandshake is what a server handler saw of one opening handshake.
type seenHandshake struct {
	Path         string
	Host         string
	Header       http.Header
	Subprotocols []string
	RemoteAddr   string
}

// recordingEcho reports every handshake on seen (which must be buffered),
// accepts it with subprotocol sub and echoes messages until the peer leaves.
func recordingEcho(sub string, seen chan<- seenHandshake) wsconn.Handler {
	return func(ctx context.Context, r *wsconn.Request) error {
		seen <- seenHandshake{
			Path:         r.Path,
			Host:         r.HTTPRequest.Host,
			Header:       r.Header,
			Subprotocols: r.Subprotocols,
			RemoteAddr:   r.RemoteAddr.String(),
		}
		c, err := r.Accept(ctx, &wsconn.AcceptOptions{Subprotocol: sub})
		if err != nil {
			return err
		}
		echoConn(ctx, c)
		return nil
	}
}

// echoConn sends every message back until the connection closes.
func echoConn(ctx context.Context, c *wsconn.Conn) {
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return
		}
		if err := c.Send(ctx, m); err != nil {
			return
		}
	}
}

// within receives one value from ch, failing the test after d.
func within[T any](t *testing.T, d time.Duration, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("nothing received within %v", d)
		panic("unreachable")
	}
}

// roundTrip checks that c echoes a text message.
func roundTrip(t *testing.T, c *wsconn.Conn) {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	if err := c.SendText(ctx, "are you there?"); err != nil {
		t.Fatalf("SendText: %v", err)
	}
	m, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if m.Type != wsconn.Text || string(m.Data) != "are you there?" {
		t.Fatalf("Receive = %v %q, want the echo", m.Type, m.Data)
	}
}

// redirectDial is a NetDialContext that records the address asked for and
// connects to target (a loopback test server) instead, so that URLs naming
// other hosts never cause a lookup or a connection elsewhere.
func redirectDial(target string, asked chan<- string) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		asked <- addr
		var d net.Dialer
		return d.DialContext(ctx, "tcp", target)
	}
}

// httpTestServer mounts srv in an httptest server (TLS when tlsOn) on
// loopback. When the test ends srv is shut down, then the httptest server.
func httpTestServer(t *testing.T, h http.Handler, srv *wsconn.Server, tlsOn bool) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // failed TLS handshakes are expected
	if tlsOn {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	return ts
}

func wantRejected(t *testing.T, err error) *wsconn.ConnectionRejectedError {
	t.Helper()
	var re *wsconn.ConnectionRejectedError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *ConnectionRejectedError", err)
	}
	if !errors.Is(err, wsconn.ErrHandshake) {
		t.Fatalf("errors.Is(%v, ErrHandshake) = false", err)
	}
	return re
}

// Only ws, wss, http and https URLs are dialed; anything else fails before
// any network I/O (no dial, no proxy lookup).
func TestDialOnlyWebSocketSchemes(t *testing.T) {
	for _, u := range []string{
		"ftp://127.0.0.1:1/",
		"file:///tmp/socket",
		"wsx://127.0.0.1:1/",
		"127.0.0.1:1",
		"//127.0.0.1:1/",
		"",
		"ws:///no-host",
	} {
		t.Run(strconv.Quote(u), func(t *testing.T) {
			var calls atomic.Int32
			opts := &wsconn.DialOptions{
				NetDialContext: func(context.Context, string, string) (net.Conn, error) {
					calls.Add(1)
					return nil, errors.New("must not dial")
				},
				Proxy: func(*http.Request) (*url.URL, error) {
					calls.Add(1)
					return nil, nil
				},
			}
			c, err := wsconn.Dial(ctxTimeout(t, 5*time.Second), u, opts)
			if err == nil {
				c.Close(ctxTimeout(t, 5*time.Second), 1000, "")
				t.Fatalf("Dial(%q) succeeded", u)
			}
			if n := calls.Load(); n != 0 {
				t.Fatalf("Dial(%q) reached the network (%d calls) before failing: %v", u, n, err)
			}
			var re *wsconn.ConnectionRejectedError
			if errors.As(err, &re) {
				t.Fatalf("Dial(%q) = %v, a rejection without a server", u, err)
			}
		})
	}
}

// The request target is sent as written: an empty path becomes "/", the
// query and percent-encoding are kept verbatim, on both sides.
func TestDialPathAndQueryVerbatim(t *testing.T) {
	seen := make(chan seenHandshake, 16)
	base := serve(t, nil, recordingEcho("", seen), nil)
	for _, tc := range []struct{ suffix, want string }{
		{"", "/"},
		{"/", "/"},
		{"?a=1", "/?a=1"},
		{"/chat", "/chat"},
		{"/room%2F1/x%41y", "/room%2F1/x%41y"},
		{"/%7Euser//double", "/%7Euser//double"},
		{"/p?x=1%202&y=%E2%82%AC&z=a+b&empty=&q={k}", "/p?x=1%202&y=%E2%82%AC&z=a+b&empty=&q={k}"},
		{"/p?", "/p?"},
		{"/frag#section", "/frag"},
	} {
		t.Run(strconv.Quote(tc.suffix), func(t *testing.T) {
			c := dial(t, base+tc.suffix, nil)
			if got := c.Path(); got != tc.want {
				t.Errorf("client Path() = %q, want %q", got, tc.want)
			}
			if h := within(t, 10*time.Second, seen); h.Path != tc.want {
				t.Errorf("server Request.Path = %q, want %q", h.Path, tc.want)
			}
			roundTrip(t, c)
		})
	}
}

// The Host header carries the port unless it is the scheme's default one.
// NetDialContext sends every dial to the loopback test server, so no other
// host is ever resolved or contacted.
func TestDialHostHeader(t *testing.T) {
	seen := make(chan seenHandshake, 16)
	target := strings.TrimPrefix(serve(t, nil, recordingEcho("", seen), nil), "ws://")
	for _, tc := range []struct {
		url, host, dialed string
		header            http.Header
	}{
		{url: "ws://localhost:80/", host: "localhost", dialed: "localhost:80"},
		{url: "ws://localhost/", host: "localhost", dialed: "localhost:80"},
		{url: "ws://localhost:8080/", host: "localhost:8080", dialed: "localhost:8080"},
		{url: "ws://localhost:443/", host: "localhost:443", dialed: "localhost:443"},
		{url: "ws://[::1]:80/", host: "[::1]", dialed: "[::1]:80"},
		{url: "ws://[::1]:8080/", host: "[::1]:8080", dialed: "[::1]:8080"},
		{url: "ws://localhost:80/", host: "virtual.test", dialed: "localhost:80",
			header: http.Header{"Host": {"virtual.test"}}},
	} {
		t.Run(tc.url+" "+tc.host, func(t *testing.T) {
			asked := make(chan string, 4)
			c := dial(t, tc.url, &wsconn.DialOptions{Header: tc.header, NetDialContext: redirectDial(target, asked)})
			if a := within(t, time.Second, asked); a != tc.dialed {
				t.Errorf("dialed %q, want %q", a, tc.dialed)
			}
			if h := within(t, 10*time.Second, seen); h.Host != tc.host {
				t.Errorf("server saw Host %q, want %q", h.Host, tc.host)
			}
			roundTrip(t, c)
		})
	}
}

// Header is sent with the handshake; the negotiated subprotocol is the
// same on both sides.
func TestDialHeaderAndSubprotocols(t *testing.T) {
	seen := make(chan seenHandshake, 16)
	serverConn := make(chan *wsconn.Conn, 1)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		seen <- seenHandshake{Header: r.Header, Subprotocols: r.Subprotocols}
		var sub string
		if slices.Contains(r.Subprotocols, "v1.chat") {
			sub = "v1.chat"
		}
		c, err := r.Accept(ctx, &wsconn.AcceptOptions{Subprotocol: sub, Header: http.Header{"X-Served-By": {"test"}}})
		if err != nil {
			return err
		}
		serverConn <- c
		<-ctx.Done()
		return nil
	}, nil)

	t.Run("negotiated", func(t *testing.T) {
		c := dial(t, url, &wsconn.DialOptions{
			Header:       http.Header{"X-Token": {"secret"}, "Authorization": {"Bearer abc"}},
			Subprotocols: []string{"v2.chat", "v1.chat"},
		})
		h := within(t, 10*time.Second, seen)
		if h.Header.Get("X-Token") != "secret" || h.Header.Get("Authorization") != "Bearer abc" {
			t.Errorf("server saw headers %v", h.Header)
		}
		if !slices.Equal(h.Subprotocols, []string{"v2.chat", "v1.chat"}) {
			t.Errorf("server saw subprotocols %q, want the client's offer in order", h.Subprotocols)
		}
		sc := within(t, 10*time.Second, serverConn)
		if c.Subprotocol() != "v1.chat" || sc.Subprotocol() != "v1.chat" {
			t.Errorf("Subprotocol() client %q, server %q, want v1.chat on both", c.Subprotocol(), sc.Subprotocol())
		}
		if got := c.ResponseHeader().Get("X-Served-By"); got != "test" {
			t.Errorf("client ResponseHeader X-Served-By = %q", got)
		}
		if c.IsClient() != true || sc.IsClient() != false {
			t.Errorf("IsClient() client %v, server %v", c.IsClient(), sc.IsClient())
		}
	})
	t.Run("none", func(t *testing.T) {
		c := dial(t, url, &wsconn.DialOptions{Subprotocols: []string{"v3.chat"}})
		within(t, 10*time.Second, seen)
		sc := within(t, 10*time.Second, serverConn)
		if c.Subprotocol() != "" || sc.Subprotocol() != "" {
			t.Errorf("Subprotocol() client %q, server %q, want none", c.Subprotocol(), sc.Subprotocol())
		}
	})
}

// A server that picks a subprotocol the client never offered fails the
// handshake on the client side.
func TestDialServerPicksUnofferedSubprotocol(t *testing.T) {
	finished := make(chan struct{}, 2)
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { finished <- struct{}{} }()
		ws, err := up.Upgrade(w, r, http.Header{"Sec-Websocket-Protocol": {"evil"}})
		if err != nil {
			return
		}
		defer ws.Close()
		ws.ReadMessage() // until the client drops the connection
	}))
	t.Cleanup(ts.Close)
	for _, offer := range [][]string{nil, {"good"}} {
		c, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), "ws://"+ts.Listener.Addr().String(), &wsconn.DialOptions{Subprotocols: offer})
		if err == nil {
			c.Close(ctxTimeout(t, 5*time.Second), 1000, "")
			t.Fatalf("offer %q: Dial accepted subprotocol %q", offer, c.Subprotocol())
		}
		if !errors.Is(err, wsconn.ErrHandshake) {
			t.Fatalf("offer %q: Dial = %v, want ErrHandshake", offer, err)
		}
		within(t, 10*time.Second, finished) // the client hung up
	}
}

// An http:// URL is dialed as ws://, with the same Host header rule.
func TestDialHTTPURL(t *testing.T) {
	seen := make(chan seenHandshake, 4)
	url := serve(t, nil, recordingEcho("", seen), nil)
	addr := strings.TrimPrefix(url, "ws://")
	roundTrip(t, dial(t, "http://"+addr+"/plain?q=1", nil))
	if h := within(t, 10*time.Second, seen); h.Path != "/plain?q=1" || h.Host != addr {
		t.Errorf("server saw Host %q Path %q", h.Host, h.Path)
	}
	asked := make(chan string, 1)
	roundTrip(t, dial(t, "HTTP://localhost/", &wsconn.DialOptions{NetDialContext: redirectDial(addr, asked)}))
	if a := within(t, time.Second, asked); a != "localhost:80" {
		t.Errorf("dialed %q, want localhost:80", a)
	}
	if h := within(t, 10*time.Second, seen); h.Host != "localhost" {
		t.Errorf("server saw Host %q, want localhost", h.Host)
	}
}

// wss uses TLSConfig; the Host header drops :443 only for wss.
func TestDialTLS(t *testing.T) {
	seen := make(chan seenHandshake, 16)
	srv := wsconn.NewServer(recordingEcho("", seen), nil)
	ts := httpTestServer(t, srv, srv, true)
	addr := ts.Listener.Addr().String()
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())

	t.Run("untrusted", func(t *testing.T) {
		c, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), "wss://"+addr, nil)
		if err == nil {
			c.Close(ctxTimeout(t, 5*time.Second), 1000, "")
			t.Fatal("Dial trusted an unknown certificate")
		}
		var re *wsconn.ConnectionRejectedError
		if errors.As(err, &re) {
			t.Fatalf("Dial = %v, want a TLS error", err)
		}
		select {
		case h := <-seen:
			t.Fatalf("handler ran for %+v", h)
		default:
		}
	})
	t.Run("verified", func(t *testing.T) {
		c := dial(t, "wss://"+addr+"/secure?x=1", &wsconn.DialOptions{TLSConfig: &tls.Config{RootCAs: pool}})
		h := within(t, 10*time.Second, seen)
		if h.Host != addr || h.Path != "/secure?x=1" {
			t.Errorf("server saw Host %q Path %q", h.Host, h.Path)
		}
		roundTrip(t, c)
	})
	t.Run("https URL", func(t *testing.T) {
		c := dial(t, "https://"+addr+"/secure", &wsconn.DialOptions{TLSConfig: &tls.Config{RootCAs: pool}})
		if h := within(t, 10*time.Second, seen); h.Path != "/secure" {
			t.Errorf("server saw Path %q", h.Path)
		}
		roundTrip(t, c)
	})
	for _, tc := range []struct{ url, host, dialed string }{
		{"wss://localhost/", "localhost", "localhost:443"},
		{"https://localhost/", "localhost", "localhost:443"},
		{"wss://localhost:443/", "localhost", "localhost:443"},
		{"wss://localhost:80/", "localhost:80", "localhost:80"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			asked := make(chan string, 4)
			c := dial(t, tc.url, &wsconn.DialOptions{
				NetDialContext: redirectDial(addr, asked),
				// The test certificate names example.com, not localhost.
				TLSConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"},
			})
			if a := within(t, time.Second, asked); a != tc.dialed {
				t.Errorf("dialed %q, want %q", a, tc.dialed)
			}
			if h := within(t, 10*time.Second, seen); h.Host != tc.host {
				t.Errorf("server saw Host %q, want %q", h.Host, tc.host)
			}
			roundTrip(t, c)
		})
	}
}

// lastTarget is the target the proxy was last asked for (recorded before
// it answers, so known once Dial has returned).
func lastTarget(t *testing.T, p *wstest.Proxy) string {
	t.Helper()
	targets := p.Targets()
	if len(targets) == 0 {
		t.Fatal("the proxy was asked for nothing")
	}
	return targets[len(targets)-1]
}

// onlyDial is a NetDialContext that connects only to addr (the proxy) and
// fails the test for any other address.
func onlyDial(t *testing.T, addr string) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, a string) (net.Conn, error) {
		if a != addr {
			t.Errorf("dialed %s %s, want only the proxy %s", network, a, addr)
			return nil, errors.New("unexpected dial")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, a)
	}
}

func TestDialThroughHTTPProxy(t *testing.T) {
	seen := make(chan seenHandshake, 16)
	server := strings.TrimPrefix(serve(t, nil, recordingEcho("", seen), nil), "ws://")
	p := wstest.StartProxy(t, &wstest.ProxyOptions{User: "alice", Password: "s3cret pw", Upstream: server})
	proxyVia := func(user *url.Userinfo) func(*http.Request) (*url.URL, error) {
		return func(*http.Request) (*url.URL, error) {
			return &url.URL{Scheme: "http", User: user, Host: p.Addr}, nil
		}
	}

	t.Run("authorised", func(t *testing.T) {
		// The host name is only ever seen by the proxy: the client dials
		// nothing but the proxy.
		c := dial(t, "ws://ws.test:8080/via-proxy", &wsconn.DialOptions{
			Proxy:          proxyVia(url.UserPassword("alice", "s3cret pw")),
			NetDialContext: onlyDial(t, p.Addr),
		})
		if target := lastTarget(t, p); target != "ws.test:8080" {
			t.Errorf("proxy asked for %q, want ws.test:8080", target)
		}
		h := within(t, 10*time.Second, seen)
		if h.Host != "ws.test:8080" || h.Path != "/via-proxy" {
			t.Errorf("server saw Host %q Path %q", h.Host, h.Path)
		}
		roundTrip(t, c)
	})
	t.Run("wrong password", func(t *testing.T) {
		c, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), "ws://"+server+"/", &wsconn.DialOptions{
			Proxy: proxyVia(url.UserPassword("alice", "wrong")),
		})
		if err == nil {
			c.Close(ctxTimeout(t, 5*time.Second), 1000, "")
			t.Fatal("Dial succeeded through a proxy that refused the credentials")
		}
		if target := lastTarget(t, p); target != server {
			t.Errorf("proxy asked for %q, want %q", target, server)
		}
		select {
		case h := <-seen:
			t.Fatalf("handler ran for %+v", h)
		default:
		}
	})
}

func TestDialThroughSOCKS5Proxy(t *testing.T) {
	seen := make(chan seenHandshake, 16)
	server := strings.TrimPrefix(serve(t, nil, recordingEcho("", seen), nil), "ws://")
	p := wstest.StartProxy(t, &wstest.ProxyOptions{SOCKS5: true, Upstream: server})
	opts := func() *wsconn.DialOptions {
		return &wsconn.DialOptions{
			Proxy: func(*http.Request) (*url.URL, error) {
				return &url.URL{Scheme: "socks5", Host: p.Addr}, nil
			},
			NetDialContext: onlyDial(t, p.Addr),
		}
	}
	for _, tc := range []struct{ url, target, host string }{
		{"ws://" + server + "/ip", server, server},
		// A name is resolved by the proxy, never by the client.
		{"ws://ws.test/name", "ws.test:80", "ws.test"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c := dial(t, tc.url, opts())
			if target := lastTarget(t, p); target != tc.target {
				t.Errorf("proxy asked for %q, want %q", target, tc.target)
			}
			if h := within(t, 10*time.Second, seen); h.Host != tc.host {
				t.Errorf("server saw Host %q, want %q", h.Host, tc.host)
			}
			roundTrip(t, c)
		})
	}
}

// NetDialContext replaces the TCP dial, e.g. with a unix socket.
func TestDialUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ws.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan seenHandshake, 16)
	serve(t, ln, recordingEcho("", seen), nil)
	c := dial(t, "ws://localhost/over-unix?x=1", &wsconn.DialOptions{
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	})
	h := within(t, 10*time.Second, seen)
	if h.Host != "localhost" || h.Path != "/over-unix?x=1" {
		t.Errorf("server saw Host %q Path %q", h.Host, h.Path)
	}
	if c.RemoteAddr().Network() != "unix" {
		t.Errorf("RemoteAddr %v is not a unix address", c.RemoteAddr())
	}
	roundTrip(t, c)
}

// pipeHoldServer accepts connections on ln and runs fn on each (in the
// bubble); hold is closed when the test ends, after which the connections
// are closed.
func pipeHoldServer(t *testing.T, ln *pipenet.Listener, fn func(c net.Conn, hold <-chan struct{})) {
	hold := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				fn(c, hold)
			})
		}
	})
	t.Cleanup(func() {
		close(hold)
		ln.Close()
		wg.Wait()
	})
}

// ConnectTimeout bounds TCP, TLS and the upgrade together and fails with
// ErrConnectionTimeout, to the virtual second.
func TestDialConnectTimeout(t *testing.T) {
	readAll := func(c net.Conn, hold <-chan struct{}) { io.Copy(io.Discard, c) }
	readNothing := func(c net.Conn, hold <-chan struct{}) { <-hold }
	for _, tc := range []struct {
		name    string
		url     string
		timeout time.Duration // 0: the default
		serve   func(c net.Conn, hold <-chan struct{})
	}{
		{name: "TCP never accepted", url: "ws://pipe/", timeout: 5 * time.Second},
		{name: "upgrade never answered", url: "ws://pipe/", timeout: 5 * time.Second, serve: readAll},
		{name: "request never read", url: "ws://pipe/", timeout: 5 * time.Second, serve: readNothing},
		{name: "TLS never answered", url: "wss://pipe/", timeout: 5 * time.Second, serve: readAll},
		{name: "default 60s", url: "ws://pipe/", serve: readAll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// Repeated: the timeout must win its race against the
				// connection deadline every time, not only usually.
				for i := range 20 {
					ln := newPipeListener()
					if tc.serve != nil {
						pipeHoldServer(t, ln, tc.serve)
					} else {
						t.Cleanup(func() { ln.Close() })
					}
					want := tc.timeout
					if want == 0 {
						want = wsconn.DefaultConnectTimeout
					}
					// The caller's own bound is far away: it only keeps a
					// broken implementation from hanging the bubble.
					ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
					start := time.Now()
					c, err := wsconn.Dial(ctx, tc.url, &wsconn.DialOptions{NetDialContext: ln.Dial, ConnectTimeout: tc.timeout})
					if err == nil {
						c.Close(ctx, 1000, "")
						cancel()
						t.Fatal("Dial succeeded")
					}
					cancel()
					if !errors.Is(err, wsconn.ErrConnectionTimeout) {
						t.Fatalf("attempt %d: Dial = %v, want ErrConnectionTimeout", i, err)
					}
					if errors.Is(err, context.Canceled) {
						t.Fatalf("attempt %d: Dial = %v, matches context.Canceled", i, err)
					}
					if d := time.Since(start); d != want {
						t.Fatalf("attempt %d: Dial failed after %v, want %v", i, d, want)
					}
				}
			})
		})
	}
}

// The caller's cancellation aborts Dial at once, even in the middle of the
// HTTP upgrade exchange, and is reported as the context's error, not as
// ErrConnectionTimeout.
func TestDialCallerCancellation(t *testing.T) {
	// gotRequest reads the whole upgrade request, reports it and then
	// waits, never answering, until the client hangs up.
	gotRequest := func(got chan<- struct{}, hungUp chan<- bool) func(c net.Conn, hold <-chan struct{}) {
		return func(c net.Conn, hold <-chan struct{}) {
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			got <- struct{}{}
			c.SetReadDeadline(time.Now().Add(time.Hour))
			_, err := io.Copy(io.Discard, br)
			hungUp <- err == nil // EOF: the client closed its end
		}
	}
	t.Run("cancel during upgrade", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ln := newPipeListener()
			got, hungUp := make(chan struct{}, 1), make(chan bool, 1)
			pipeHoldServer(t, ln, gotRequest(got, hungUp))
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				c, err := wsconn.Dial(ctx, "ws://pipe/", &wsconn.DialOptions{NetDialContext: ln.Dial})
				if err == nil {
					c.Close(context.Background(), 1000, "")
				}
				errc <- err
			}()
			<-got
			start := time.Now()
			cancel()
			err := <-errc
			if !errors.Is(err, context.Canceled) || errors.Is(err, wsconn.ErrConnectionTimeout) {
				t.Fatalf("Dial = %v, want context.Canceled and not ErrConnectionTimeout", err)
			}
			if d := time.Since(start); d != 0 {
				t.Fatalf("Dial returned %v after the cancellation", d)
			}
			if !<-hungUp {
				t.Fatal("the connection was not closed after the cancelled Dial")
			}
		})
	})
	t.Run("cancel during TCP dial", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ln := newPipeListener() // never accepts
			defer ln.Close()
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				_, err := wsconn.Dial(ctx, "ws://pipe/", &wsconn.DialOptions{NetDialContext: ln.Dial})
				errc <- err
			}()
			synctest.Wait()
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) || errors.Is(err, wsconn.ErrConnectionTimeout) {
				t.Fatalf("Dial = %v, want context.Canceled and not ErrConnectionTimeout", err)
			}
		})
	})
	t.Run("caller deadline before ConnectTimeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			for i := range 20 { // the deadline must win its race every time
				ln := newPipeListener()
				got, hungUp := make(chan struct{}, 1), make(chan bool, 1)
				pipeHoldServer(t, ln, gotRequest(got, hungUp))
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				start := time.Now()
				_, err := wsconn.Dial(ctx, "ws://pipe/", &wsconn.DialOptions{NetDialContext: ln.Dial, ConnectTimeout: 10 * time.Second})
				cancel()
				if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, wsconn.ErrConnectionTimeout) {
					t.Fatalf("attempt %d: Dial = %v, want context.DeadlineExceeded and not ErrConnectionTimeout", i, err)
				}
				if d := time.Since(start); d != 2*time.Second {
					t.Fatalf("attempt %d: Dial failed after %v, want 2s", i, d)
				}
			}
		})
	})
	t.Run("over TCP", func(t *testing.T) {
		got, hungUp := make(chan struct{}, 1), make(chan bool, 1)
		addr := wstest.ServeTCP(t, func(c net.Conn) { gotRequest(got, hungUp)(c, nil) })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			c, err := wsconn.Dial(ctx, "ws://"+addr+"/", nil)
			if err == nil {
				c.Close(context.Background(), 1000, "")
			}
			errc <- err
		}()
		within(t, 10*time.Second, got)
		cancel()
		if err := within(t, 10*time.Second, errc); !errors.Is(err, context.Canceled) || errors.Is(err, wsconn.ErrConnectionTimeout) {
			t.Fatalf("Dial = %v, want context.Canceled and not ErrConnectionTimeout", err)
		}
		if !within(t, 10*time.Second, hungUp) {
			t.Fatal("the connection was not closed after the cancelled Dial")
		}
	})
}

// A status other than 101 is a *ConnectionRejectedError carrying the
// status, headers and (the first KiB of) the body; it matches ErrHandshake.
func TestDialRejected(t *testing.T) {
	t.Run("Reject", func(t *testing.T) {
		url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
			return r.Reject(ctx, http.StatusUnauthorized, http.Header{"Www-Authenticate": {`Bearer realm="ws"`}}, []byte("token required"))
		}, nil)
		_, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), url, nil)
		re := wantRejected(t, err)
		if re.StatusCode != http.StatusUnauthorized || re.Header.Get("Www-Authenticate") != `Bearer realm="ws"` || string(re.Body) != "token required" {
			t.Fatalf("rejection = %d %v %q", re.StatusCode, re.Header, re.Body)
		}
	})
	t.Run("plain HTTP server", func(t *testing.T) {
		body := strings.Repeat("0123456789abcdef", 4096/16)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, body)
		}))
		t.Cleanup(ts.Close)
		_, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), "ws://"+ts.Listener.Addr().String(), nil)
		re := wantRejected(t, err)
		if re.StatusCode != http.StatusServiceUnavailable || re.Header.Get("Retry-After") != "120" {
			t.Fatalf("rejection = %d %v", re.StatusCode, re.Header)
		}
		if string(re.Body) != body[:1024] {
			t.Fatalf("Body is %d bytes, want the first 1024 bytes of the response body", len(re.Body))
		}
	})
	t.Run("101 with a wrong accept key", func(t *testing.T) {
		addr := wstest.ServeTCP(t, func(c net.Conn) {
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n")
			io.Copy(io.Discard, c)
		})
		_, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), "ws://"+addr, nil)
		if !errors.Is(err, wsconn.ErrHandshake) {
			t.Fatalf("Dial = %v, want ErrHandshake", err)
		}
		var re *wsconn.ConnectionRejectedError
		if errors.As(err, &re) {
			t.Fatalf("Dial = %v, a 101 is not a rejection", err)
		}
	})
}
