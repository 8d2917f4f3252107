package wsconn_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/wsconn"
)

// rawHTTP sends one raw HTTP/1.1 request to addr and returns the response
// with its body read.
func rawHTTP(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// Serve runs the handler once per handshake, each with its own request.
func TestServeRunsHandlerPerRequest(t *testing.T) {
	ln := listen(t)
	url := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		if c.IsClient() || c.Path() != r.Path {
			return fmt.Errorf("server conn: IsClient %v, Path %q for request %q", c.IsClient(), c.Path(), r.Path)
		}
		msg := strings.Join([]string{r.Path, r.RemoteAddr.String(), r.LocalAddr.String()}, " ")
		if err := c.SendText(ctx, msg); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	}, nil)
	var wg sync.WaitGroup
	for _, path := range []string{"/a", "/b?x=1", "/c"} {
		wg.Go(func() {
			c := dial(t, url+path, nil)
			m, err := c.Receive(ctxTimeout(t, 10*time.Second))
			if err != nil {
				t.Errorf("%s: %v", path, err)
				return
			}
			want := strings.Join([]string{path, c.LocalAddr().String(), ln.Addr().String()}, " ")
			if string(m.Data) != want {
				t.Errorf("handler saw %q, want %q", m.Data, want)
			}
		})
	}
	wg.Wait()
}

// A Server mounted in an http.Server (through ServeHTTP) runs the handler
// per request, and cancels its ctx with the close error when the client
// closes.
func TestServeHTTPMounted(t *testing.T) {
	causes := make(chan error, 4)
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		if err := c.SendText(ctx, r.Path); err != nil {
			// The client has received it: a failure here is a bug.
			causes <- fmt.Errorf("handler's SendText: %w", err)
			return err
		}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil
	}, nil)
	mux := http.NewServeMux()
	mux.Handle("/ws/", srv)
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	ts := httpTestServer(t, mux, srv, false)
	base := "ws://" + ts.Listener.Addr().String()

	for _, path := range []string{"/ws/one", "/ws/two?k=v"} {
		c := dial(t, base+path, nil)
		ctx := ctxTimeout(t, 10*time.Second)
		if m, err := c.Receive(ctx); err != nil || string(m.Data) != path {
			t.Fatalf("Receive = %q, %v; want the handler's path %q", m.Data, err, path)
		}
		if err := c.Close(ctx, 4001, "bye"); err != nil {
			t.Fatal(err)
		}
		wantClosed(t, within(t, 10*time.Second, causes), 4001, "bye")
	}
	if resp, body := rawHTTP(t, ts.Listener.Addr().String(), "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("the rest of the mux answered %d %q", resp.StatusCode, body)
	}
}

// The handler's ctx is cancelled, with the *ConnectionClosedError as cause,
// when the connection closes, even while the handler is not receiving.
func TestHandlerCtxCancelledWhenConnectionDrops(t *testing.T) {
	causes := make(chan error, 4)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		if _, err := r.Accept(ctx, nil); err != nil {
			return err
		}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil
	}, nil)

	t.Run("client closes", func(t *testing.T) {
		c := dial(t, url, nil)
		if err := c.Close(ctxTimeout(t, 10*time.Second), 4001, "bye"); err != nil {
			t.Fatal(err)
		}
		wantClosed(t, within(t, 10*time.Second, causes), 4001, "bye")
	})
	t.Run("TCP lost", func(t *testing.T) {
		ws, _, err := websocket.DefaultDialer.DialContext(ctxTimeout(t, 10*time.Second), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.NetConn().Close()
		wantClosed(t, within(t, 10*time.Second, causes), wsconn.StatusAbnormalClosure, "*")
	})
}

// Accept refuses a subprotocol the client did not offer.
func TestAcceptUnofferedSubprotocol(t *testing.T) {
	acceptErr := make(chan error, 4)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		_, err := r.Accept(ctx, &wsconn.AcceptOptions{Subprotocol: "b"})
		acceptErr <- err
		if err != nil {
			return nil // undecided: 403
		}
		<-ctx.Done()
		return nil
	}, nil)
	for _, offer := range [][]string{nil, {"a"}, {"a", "bb"}} {
		_, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), url, &wsconn.DialOptions{Subprotocols: offer})
		if aerr := within(t, 10*time.Second, acceptErr); aerr == nil {
			t.Fatalf("offer %q: Accept(subprotocol b) succeeded", offer)
		}
		if re := wantRejected(t, err); re.StatusCode != http.StatusForbidden {
			t.Fatalf("offer %q: client got %d, want 403", offer, re.StatusCode)
		}
	}
	// The offered one is fine.
	c := dial(t, url, &wsconn.DialOptions{Subprotocols: []string{"a", "b"}})
	if err := within(t, 10*time.Second, acceptErr); err != nil || c.Subprotocol() != "b" {
		t.Fatalf("Accept = %v, client Subprotocol %q", err, c.Subprotocol())
	}
}

// Reject writes the status, headers and body; it cannot answer 101, and
// the request can be decided only once.
func TestRejectWritesResponse(t *testing.T) {
	errs := make(chan []error, 1)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		e101 := r.Reject(ctx, http.StatusSwitchingProtocols, nil, nil)
		err := r.Reject(ctx, http.StatusTeapot, http.Header{"X-Reason": {"tea only"}, "Content-Type": {"text/plain"}}, []byte("short and stout"))
		again := r.Reject(ctx, http.StatusBadRequest, nil, nil)
		_, accept := r.Accept(ctx, nil)
		errs <- []error{e101, err, again, accept}
		return nil
	}, nil)
	_, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), url, nil)
	re := wantRejected(t, err)
	if re.StatusCode != http.StatusTeapot || re.Header.Get("X-Reason") != "tea only" || string(re.Body) != "short and stout" {
		t.Fatalf("client got %d %v %q", re.StatusCode, re.Header, re.Body)
	}
	e := within(t, 10*time.Second, errs)
	if e[0] == nil {
		t.Error("Reject(101) succeeded")
	}
	if e[1] != nil {
		t.Errorf("Reject(418) = %v", e[1])
	}
	if e[2] == nil || e[3] == nil {
		t.Errorf("deciding a second time: Reject = %v, Accept = %v; want errors", e[2], e[3])
	}
}

// A request that is not a WebSocket handshake gets 400 without reaching
// the handler, and the server goes on serving.
func TestNonHandshakeRequestGets400(t *testing.T) {
	var ran atomic.Int32
	ln := listen(t)
	url := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
		ran.Add(1)
		return echo(ctx, r)
	}, nil)
	addr := ln.Addr().String()
	for name, req := range map[string]string{
		"plain GET":   "GET / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n",
		"POST":        "POST / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n\r\n",
		"version 8":   "GET / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		"missing key": "GET / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
	} {
		if resp, _ := rawHTTP(t, addr, req); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, resp.StatusCode)
		}
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("handler ran %d times for non-handshake requests", n)
	}
	roundTrip(t, dial(t, url, nil))
}

// The handshake request must arrive within ConnectTimeout; a client that
// connects and sends nothing (or not enough) is dropped, and the handler
// never runs.
func TestServerHandshakeTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration // 0: the default
		send    string
	}{
		{"nothing sent", 5 * time.Second, ""},
		{"half a request", 5 * time.Second, "GET / HTTP/1.1\r\nHost: pipe\r\n"},
		{"default 60s", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ln := newPipeListener()
				var ran atomic.Bool
				serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
					ran.Store(true)
					return echo(ctx, r)
				}, &wsconn.ServerOptions{ConnectTimeout: tc.timeout})
				c, err := ln.Dial(context.Background(), "pipe", "pipe")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				start := time.Now()
				c.SetDeadline(start.Add(time.Hour)) // only against a hang
				if tc.send != "" {
					if _, err := io.WriteString(c, tc.send); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := io.ReadAll(c); err != nil {
					t.Fatalf("the server did not drop the connection: %v", err)
				}
				want := tc.timeout
				if want == 0 {
					want = wsconn.DefaultConnectTimeout
				}
				if d := time.Since(start); d != want {
					t.Fatalf("dropped after %v, want %v", d, want)
				}
				if ran.Load() {
					t.Fatal("the handler ran")
				}
			})
		})
	}
}

// A connection left idle after a refused request is a handshake that does
// not arrive either: it is dropped within ConnectTimeout.
func TestServerDropsIdleConnectionAfterRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
			return r.Reject(ctx, http.StatusUnauthorized, nil, []byte("who are you?"))
		}, &wsconn.ServerOptions{ConnectTimeout: 5 * time.Second})
		c, err := ln.Dial(context.Background(), "pipe", "pipe")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Hour)) // only against a hang
		br := bufio.NewReader(c)
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: pipe\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
		start := time.Now()
		if _, err := io.ReadAll(br); err != nil {
			t.Fatalf("the idle connection was not dropped: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("idle connection dropped after %v, want within ConnectTimeout (5s)", d)
		}
	})
}

// A handler returning nil closes its connection with 1000.
func TestHandlerReturnsNilCloses1000(t *testing.T) {
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		return c.SendText(ctx, "bye")
	}, nil)
	c := dial(t, url, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	if m, err := c.Receive(ctx); err != nil || string(m.Data) != "bye" {
		t.Fatalf("Receive = %q, %v", m.Data, err)
	}
	_, err := c.Receive(ctx)
	wantClosed(t, err, wsconn.StatusNormalClosure, "")
}

// failingHandler echoes, except on /fail (returns an error), /panic
// (panics) and /wait (waits for ctx).
func failingHandler(failure error) wsconn.Handler {
	return func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		switch r.Path {
		case "/fail":
			return failure
		case "/panic":
			panic("kaboom")
		case "/wait":
			<-ctx.Done()
			return nil
		}
		echoConn(ctx, c)
		return nil
	}
}

// A handler that fails or panics closes its connection with 1011 and is
// logged (a panic with its stack); the server keeps serving.
func TestHandlerFailureCloses1011AndIsLogged(t *testing.T) {
	logs, logger := newLogRecorder(slog.LevelInfo)
	failure := errors.New("handler exploded")
	url := serve(t, nil, failingHandler(failure), &wsconn.ServerOptions{Logger: logger})
	for _, tc := range []struct {
		path  string
		match func(logged) bool
	}{
		{"/fail", func(l logged) bool {
			return l.Level == slog.LevelError && strings.Contains(fmt.Sprint(l.Attrs), "handler exploded")
		}},
		{"/panic", func(l logged) bool {
			all := fmt.Sprint(l.Msg, l.Attrs)
			return l.Level == slog.LevelError && strings.Contains(all, "kaboom") && strings.Contains(all, "server_test.go")
		}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			c := dial(t, url+tc.path, nil)
			_, err := c.Receive(ctxTimeout(t, 10*time.Second))
			wantClosed(t, err, wsconn.StatusInternalError, "*")
			logs.waitFor(t, "error-level "+tc.path, tc.match)
			roundTrip(t, dial(t, url+"/echo", nil)) // still serving
		})
	}
}

// With FailFast a failing handler stops the server: Serve returns its
// error (the same value), the other connections get 1001, the listener is
// closed.
func TestFailFast(t *testing.T) {
	failure := errors.New("handler exploded")
	for _, tc := range []struct {
		path  string
		check func(t *testing.T, err error)
	}{
		{"/fail", func(t *testing.T, err error) {
			if err != failure {
				t.Fatalf("Serve = %#v, want the handler's error itself", err)
			}
		}},
		{"/panic", func(t *testing.T, err error) {
			var pe *wsconn.HandlerPanicError
			if !errors.As(err, &pe) || pe.Value != "kaboom" || len(pe.Stack) == 0 {
				t.Fatalf("Serve = %v, want a *HandlerPanicError with the value and stack", err)
			}
		}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			ln := listen(t)
			url := "ws://" + ln.Addr().String()
			srv := wsconn.NewServer(failingHandler(failure), &wsconn.ServerOptions{FailFast: true})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ctx, ln) }()

			bystander := dial(t, url+"/wait", nil)
			failing := dial(t, url+tc.path, nil)
			tc.check(t, within(t, 10*time.Second, errc))

			rctx := ctxTimeout(t, 10*time.Second)
			_, err := failing.Receive(rctx)
			wantClosed(t, err, wsconn.StatusInternalError, "*")
			_, err = bystander.Receive(rctx)
			wantClosed(t, err, wsconn.StatusGoingAway, "*")
			if c, err := wsconn.Dial(rctx, url, nil); err == nil {
				c.Close(rctx, 1000, "")
				t.Fatal("the server still accepts after FailFast stopped it")
			}
		})
	}
}

// Browser requests must be same-origin by default; CheckOrigin overrides.
func TestOriginCheck(t *testing.T) {
	seen := make(chan seenHandshake, 16)
	ln := listen(t)
	addr := ln.Addr().String()
	defaultURL := serve(t, ln, recordingEcho("", seen), nil)
	customURL := serve(t, nil, recordingEcho("", seen), &wsconn.ServerOptions{
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "https://app.example" },
	})
	for _, tc := range []struct {
		name, url, origin string
		ok                bool
	}{
		{"no Origin", defaultURL, "", true},
		{"same host", defaultURL, "http://" + addr, true},
		{"cross-site", defaultURL, "https://evil.example", false},
		{"look-alike host", defaultURL, "http://" + addr + ".evil.example", false},
		{"opaque origin", defaultURL, "null", false},
		{"CheckOrigin allows", customURL, "https://app.example", true},
		{"CheckOrigin refuses", customURL, "https://evil.example", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h http.Header
			if tc.origin != "" {
				h = http.Header{"Origin": {tc.origin}}
			}
			c, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), tc.url, &wsconn.DialOptions{Header: h})
			if tc.ok {
				if err != nil {
					t.Fatalf("Dial with Origin %q = %v", tc.origin, err)
				}
				within(t, 10*time.Second, seen)
				c.Close(ctxTimeout(t, 10*time.Second), 1000, "")
				return
			}
			if err == nil {
				c.Close(ctxTimeout(t, 10*time.Second), 1000, "")
				t.Fatalf("Dial with Origin %q accepted", tc.origin)
			}
			if re := wantRejected(t, err); re.StatusCode != http.StatusForbidden {
				t.Fatalf("Origin %q: status %d, want 403", tc.origin, re.StatusCode)
			}
			select {
			case h := <-seen:
				t.Fatalf("handler ran for a refused origin: %+v", h)
			default:
			}
		})
	}
}

// Shutdown (or cancelling Serve's ctx) stops accepting, closes every
// connection with 1001, cancels the handlers and returns only once every
// handler has returned.
func TestServerShutdown(t *testing.T) {
	for _, how := range []string{"ctx", "Shutdown"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 3
				ln := newPipeListener()
				started, causes := make(chan struct{}, n), make(chan error, n)
				release := make(chan struct{})
				var returned atomic.Int32
				srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
					defer returned.Add(1)
					if _, err := r.Accept(ctx, nil); err != nil {
						return err
					}
					started <- struct{}{}
					<-ctx.Done()
					causes <- context.Cause(ctx)
					<-release // slow clean-up
					return nil
				}, nil)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				serveErr := make(chan error, 1)
				go func() { serveErr <- srv.Serve(ctx, ln) }()

				clients := make([]*wsconn.Conn, n)
				for i := range clients {
					c, err := wsconn.Dial(ctx, "ws://pipe/", &wsconn.DialOptions{NetDialContext: ln.Dial})
					if err != nil {
						t.Fatal(err)
					}
					clients[i] = c
					<-started
				}
				shutdownErr := make(chan error, 1)
				if how == "ctx" {
					cancel()
				} else {
					go func() { shutdownErr <- srv.Shutdown(context.Background()) }()
				}
				for _, c := range clients {
					_, err := c.Receive(context.Background())
					wantClosed(t, err, wsconn.StatusGoingAway, "*")
				}
				for range n {
					cause := <-causes
					var ce *wsconn.ConnectionClosedError
					if !errors.Is(cause, wsconn.ErrServerClosed) && !(errors.As(cause, &ce) && ce.Reason.Code == wsconn.StatusGoingAway) {
						t.Errorf("handler ctx cause = %v, want the 1001 close or ErrServerClosed", cause)
					}
				}
				synctest.Wait()
				select {
				case err := <-serveErr:
					t.Fatalf("Serve returned (%v) while handlers were still running", err)
				case err := <-shutdownErr:
					t.Fatalf("Shutdown returned (%v) while handlers were still running", err)
				default:
				}
				dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
				if _, err := ln.Dial(dctx, "", ""); !errors.Is(err, net.ErrClosed) {
					t.Fatalf("dialing after shutdown: %v, want the listener closed", err)
				}
				dcancel()
				close(release)
				err := <-serveErr
				if r := returned.Load(); r != n {
					t.Fatalf("Serve returned with %d of %d handlers returned", r, n)
				}
				if how == "ctx" {
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("Serve = %v, want context.Canceled", err)
					}
				} else {
					if err != nil {
						t.Fatalf("Serve = %v, want nil after Shutdown", err)
					}
					if err := <-shutdownErr; err != nil {
						t.Fatalf("Shutdown = %v", err)
					}
				}
			})
		})
	}
}

// Shutdown of a Server mounted with ServeHTTP: connections get 1001,
// undecided handlers are cancelled too, Shutdown waits for all handlers,
// and later handshakes are refused.
func TestServeHTTPShutdown(t *testing.T) {
	started := make(chan string, 4)
	var returned atomic.Int32
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		defer returned.Add(1)
		if r.Path == "/undecided" {
			started <- r.Path
			<-ctx.Done()
			return nil
		}
		if _, err := r.Accept(ctx, nil); err != nil {
			return err
		}
		started <- r.Path
		<-ctx.Done()
		return nil
	}, nil)
	ts := httpTestServer(t, srv, srv, false)
	url := "ws://" + ts.Listener.Addr().String()
	c := dial(t, url+"/accepted", nil)
	within(t, 10*time.Second, started)
	undecided := make(chan error, 1)
	go func() {
		c, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), url+"/undecided", nil)
		if err == nil {
			c.Close(context.Background(), 1000, "")
		}
		undecided <- err
	}()
	within(t, 10*time.Second, started)

	if err := srv.Shutdown(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if r := returned.Load(); r != 2 {
		t.Fatalf("Shutdown returned with %d of 2 handlers returned", r)
	}
	_, err := c.Receive(ctxTimeout(t, 10*time.Second))
	wantClosed(t, err, wsconn.StatusGoingAway, "*")
	if err := within(t, 10*time.Second, undecided); err == nil {
		t.Fatal("the undecided handshake succeeded")
	}
	_, err = wsconn.Dial(ctxTimeout(t, 10*time.Second), url, nil)
	if re := wantRejected(t, err); re.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("handshake after Shutdown: %d, want 503", re.StatusCode)
	}
}

// A handler that returns without accepting or rejecting refuses the
// handshake: 403, or 500 when it returned an error.
func TestHandlerWithoutDecision(t *testing.T) {
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		if r.Path == "/error" {
			return errors.New("could not decide")
		}
		return nil
	}, nil)
	for path, want := range map[string]int{"/nil": http.StatusForbidden, "/error": http.StatusInternalServerError} {
		_, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), url+path, nil)
		if re := wantRejected(t, err); re.StatusCode != want {
			t.Errorf("%s: status %d, want %d", path, re.StatusCode, want)
		}
	}
}

// A request is decided once: a second Accept (or a Reject after Accept)
// fails and leaves the accepted connection working.
func TestAcceptTwice(t *testing.T) {
	errs := make(chan [2]error, 1)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		c2, again := r.Accept(ctx, nil)
		if c2 != nil {
			return errors.New("second Accept returned a connection")
		}
		reject := r.Reject(ctx, http.StatusBadRequest, nil, nil)
		errs <- [2]error{again, reject}
		echoConn(ctx, c)
		return nil
	}, nil)
	c := dial(t, url, nil)
	e := within(t, 10*time.Second, errs)
	if e[0] == nil || e[1] == nil {
		t.Fatalf("after Accept: Accept = %v, Reject = %v; want errors", e[0], e[1])
	}
	roundTrip(t, c)
}

// A handler receiving with its own ctx still gets the messages that
// arrived before the peer's Close, then the close error: the ctx being
// cancelled because the connection closed does not hide either.
func TestHandlerReceivesQueuedMessagesThenCloseError(t *testing.T) {
	type result struct {
		msgs []string
		err  error
	}
	results := make(chan result, 1)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		<-ctx.Done() // everything has arrived: the connection is closed
		var res result
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				res.err = err
				break
			}
			res.msgs = append(res.msgs, string(m.Data))
		}
		results <- res
		return nil
	}, nil)
	for i := range 5 { // Receive must not leave it to chance
		c := dial(t, url, nil)
		ctx := ctxTimeout(t, 10*time.Second)
		if err := c.SendText(ctx, "last words"); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(ctx, 4001, "bye"); err != nil {
			t.Fatal(err)
		}
		res := within(t, 10*time.Second, results)
		if !slices.Equal(res.msgs, []string{"last words"}) {
			t.Fatalf("attempt %d: handler received %q (then %v), want the message sent before Close", i, res.msgs, res.err)
		}
		wantClosed(t, res.err, 4001, "bye")
	}
}

// A handler that returns Receive's close error after the client closed has
// not failed: nothing is logged and FailFast does not stop the server.
func TestHandlerReturningCloseErrorIsNotAFailure(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, &slog.HandlerOptions{Level: slog.LevelError}))
	returned := make(chan error, 1)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		for {
			if _, err := c.Receive(ctx); err != nil {
				returned <- err
				return err
			}
		}
	}, &wsconn.ServerOptions{FailFast: true, Logger: logger})
	for range 2 { // the server is still serving after the first
		c := dial(t, url, nil)
		if err := c.Close(ctxTimeout(t, 10*time.Second), wsconn.StatusNormalClosure, ""); err != nil {
			t.Fatal(err)
		}
		wantClosed(t, <-returned, wsconn.StatusNormalClosure, "*")
	}
	mu.Lock()
	defer mu.Unlock()
	if logs.Len() != 0 {
		t.Fatalf("logged: %s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Beyond MaxConnections a handshake gets 503 with Retry-After, logged at
// Warn; the connections already open go on working.
func TestMaxConnections(t *testing.T) {
	logs, logger := newLogRecorder(slog.LevelWarn)
	url := serve(t, nil, echo, &wsconn.ServerOptions{MaxConnections: 2, Logger: logger})
	first, second := dial(t, url, nil), dial(t, url, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	for range 2 {
		c, err := wsconn.Dial(ctx, url+"/third", nil)
		if err == nil {
			c.Close(ctx, 1000, "")
			t.Fatal("a third connection was accepted")
		}
		var re *wsconn.ConnectionRejectedError
		if !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable || re.Header.Get("Retry-After") == "" {
			t.Fatalf("Dial = %v, want a 503 rejection with Retry-After", err)
		}
	}
	roundTrip(t, first)
	roundTrip(t, second)
	logs.waitFor(t, "refusal", func(l logged) bool {
		return l.Level == slog.LevelWarn && l.Msg == "websocket handshake refused" && l.Attrs["status"] == "503" && l.Attrs["path"] == "/third"
	})
}

// ServeHTTP mounted under an http.ServeMux counts its handlers the same
// way, and a zero MaxConnections means no limit.
func TestMaxConnectionsZeroIsUnlimited(t *testing.T) {
	url := serve(t, nil, echo, &wsconn.ServerOptions{MaxConnections: 0})
	for range 8 {
		roundTrip(t, dial(t, url, nil))
	}
}

// A handshake request whose headers exceed MaxHeaderBytes is refused by
// the HTTP server (431) before any handler runs.
func TestMaxHeaderBytes(t *testing.T) {
	ran := make(chan struct{}, 2)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		ran <- struct{}{}
		return echo(ctx, r)
	}, &wsconn.ServerOptions{MaxHeaderBytes: 1024})
	ctx := ctxTimeout(t, 10*time.Second)
	// http.Server allows 4 KiB over MaxHeaderBytes.
	_, err := wsconn.Dial(ctx, url, &wsconn.DialOptions{Header: http.Header{"X-Big": {strings.Repeat("x", 8<<10)}}})
	var re *wsconn.ConnectionRejectedError
	if !errors.As(err, &re) || re.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("Dial with 8 KiB of headers = %v, want 431", err)
	}
	roundTrip(t, dial(t, url, nil))
	if len(ran) != 1 {
		t.Fatalf("the handler ran %d times, want once (not for the oversized request)", len(ran))
	}
}

// OnListen hands over the address Serve listens on, before it accepts.
func TestOnListen(t *testing.T) {
	addrs := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- wsconn.ListenAndServe(ctx, "127.0.0.1:0", echo, &wsconn.ServerOptions{OnListen: func(a net.Addr) { addrs <- a }})
	}()
	a := within(t, 10*time.Second, addrs)
	if tcp, ok := a.(*net.TCPAddr); !ok || tcp.Port == 0 || !tcp.IP.IsLoopback() {
		t.Fatalf("OnListen got %v, want the bound loopback address", a)
	}
	roundTrip(t, dial(t, "ws://"+a.String(), nil))
	cancel()
	if err := within(t, 10*time.Second, errc); err != context.Canceled {
		t.Fatalf("ListenAndServe = %v, want context.Canceled", err)
	}
}

// A handler that returns the server's shutdown — its ctx's cancellation,
// or Accept's ErrServerClosed — has not failed: nothing is logged, FailFast
// does not fire, and (mounted, where the HTTP server stays up) an
// undecided handshake gets 503.
func TestHandlerReturningShutdownIsNotAFailure(t *testing.T) {
	for _, mounted := range []bool{false, true} {
		t.Run(fmt.Sprintf("mounted=%v", mounted), func(t *testing.T) {
			logs, logger := newLogRecorder(slog.LevelError)
			var srv *wsconn.Server
			shutdown := make(chan error, 1)
			srv = wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
				go func() { shutdown <- srv.Shutdown(context.Background()) }()
				<-ctx.Done() // the server is stopping: it cancels handlers last
				if !errors.Is(context.Cause(ctx), wsconn.ErrServerClosed) {
					t.Errorf("cause = %v, want ErrServerClosed", context.Cause(ctx))
				}
				_, err := r.Accept(ctx, nil)
				if err == nil {
					t.Error("Accept succeeded during shutdown")
				}
				return err
			}, &wsconn.ServerOptions{FailFast: true, Logger: logger})
			var url string
			served := make(chan error, 1)
			if mounted {
				url = "ws://" + httpTestServer(t, srv, srv, false).Listener.Addr().String()
				served <- nil
			} else {
				ln := listen(t)
				url = "ws://" + ln.Addr().String()
				go func() { served <- srv.Serve(context.Background(), ln) }()
			}
			_, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), url, nil)
			if err == nil {
				t.Fatal("the handshake succeeded")
			}
			if mounted {
				if re := wantRejected(t, err); re.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("handshake refused with %d, want 503", re.StatusCode)
				}
			}
			if err := within(t, 10*time.Second, shutdown); err != nil {
				t.Fatalf("Shutdown = %v", err)
			}
			// Serve returns once every handler has, with the FailFast error
			// if one had failed.
			if err := within(t, 10*time.Second, served); err != nil {
				t.Fatalf("Serve = %v, want nil: nothing failed", err)
			}
			if recs := logs.records(); len(recs) > 0 {
				t.Fatalf("logged:\n%s", logs.dump())
			}
		})
	}
}
