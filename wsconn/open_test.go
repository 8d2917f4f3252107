package wsconn_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/wsconn"
)

// closeWatcher is a server whose handler receives until the connection
// closes and reports the error Receive ended with: the code the client
// sent. On a message "close" it closes the connection itself, with 4000
// "peer".
func closeWatcher(t *testing.T) (url string, ended chan error) {
	ended = make(chan error, 4)
	url = serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		// Not the handler's ctx: it is cancelled when the connection
		// closes, and this wants the connection's own error.
		rctx := context.WithoutCancel(ctx)
		for {
			m, err := c.Receive(rctx)
			if err != nil {
				ended <- err
				return nil
			}
			if string(m.Data) == "close" {
				return c.Close(rctx, 4000, "peer")
			}
		}
	}, nil)
	return url, ended
}

// waitDone waits for ctx to be cancelled, failing the test after 10 s.
func waitDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("fn's ctx was not cancelled")
	}
}

// fn's ctx is cancelled, with the *ConnectionClosedError as cause, when the
// peer closes the connection.
func TestOpenCancelsFnWhenPeerCloses(t *testing.T) {
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := c.Receive(ctx); err != nil {
			return err
		}
		return c.Close(ctx, 4000, "x")
	}, nil)
	err := wsconn.Open(ctxTimeout(t, 10*time.Second), url, nil, func(ctx context.Context, c *wsconn.Conn) error {
		if ctx.Err() != nil {
			t.Fatalf("fn's ctx ended before anything happened: %v", context.Cause(ctx))
		}
		if err := c.SendText(ctx, "close me"); err != nil {
			return err
		}
		waitDone(t, ctx)
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("ctx.Err() = %v, want context.Canceled", ctx.Err())
		}
		wantClosed(t, context.Cause(ctx), 4000, "x")
		return nil
	})
	if err != nil {
		t.Fatalf("Open = %v, want nil after the peer's clean close", err)
	}
}

// fn's ctx is cancelled with a 1006 cause when TCP is lost.
func TestOpenCancelsFnWhenConnectionLost(t *testing.T) {
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.ReadMessage()
		ws.NetConn().Close() // no Close frame
	})
	err := wsconn.Open(ctxTimeout(t, 10*time.Second), url, nil, func(ctx context.Context, c *wsconn.Conn) error {
		if err := c.SendText(ctx, "drop me"); err != nil {
			return err
		}
		waitDone(t, ctx)
		wantClosed(t, context.Cause(ctx), wsconn.StatusAbnormalClosure, "*")
		return ctx.Err()
	})
	// fn's error only echoes the loss: Open says why the connection closed.
	wantClosed(t, err, wsconn.StatusAbnormalClosure, "*")
}

// When fn returns, Open runs the closing handshake (1000, seen by the
// server) before returning.
func TestOpenClosesWhenFnReturns(t *testing.T) {
	url, ended := closeWatcher(t)
	var conn *wsconn.Conn
	err := wsconn.Open(ctxTimeout(t, 10*time.Second), url, nil, func(ctx context.Context, c *wsconn.Conn) error {
		conn = c
		return c.SendText(ctx, "hello")
	})
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	select {
	case <-conn.Done():
	default:
		t.Fatal("the connection outlived Open")
	}
	if r := closeReason(t, conn); r.Code != wsconn.StatusNormalClosure {
		t.Fatalf("CloseReason = %v, want 1000", r)
	}
	wantClosed(t, within(t, 10*time.Second, ended), wsconn.StatusNormalClosure, "")
}

type openTestError struct{ msg string }

func (e *openTestError) Error() string { return e.msg }

// Open returns fn's error itself, not a wrapper, and closes with 1011.
func TestOpenReturnsFnErrorItself(t *testing.T) {
	url, ended := closeWatcher(t)
	for _, want := range []error{errors.New("sentinel"), &openTestError{"typed"}} {
		got := wsconn.Open(ctxTimeout(t, 10*time.Second), url, nil, func(context.Context, *wsconn.Conn) error {
			return want
		})
		if got != want {
			t.Fatalf("Open = %#v, want fn's error %#v itself", got, want)
		}
		wantClosed(t, within(t, 10*time.Second, ended), wsconn.StatusInternalError, "internal error")
	}

	// Also when the connection is already gone and closing cannot succeed.
	lost := rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.ReadMessage()
		ws.NetConn().Close()
	})
	var fnErr error
	got := wsconn.Open(ctxTimeout(t, 10*time.Second), lost, nil, func(ctx context.Context, c *wsconn.Conn) error {
		if err := c.SendText(ctx, "drop me"); err != nil {
			t.Errorf("SendText = %v", err)
		}
		_, fnErr = c.Receive(ctx)
		return fnErr
	})
	if fnErr == nil || got != fnErr {
		t.Fatalf("Open = %v, want fn's error %v itself", got, fnErr)
	}
}

// A failed dial is returned and fn never runs.
func TestOpenDialFailure(t *testing.T) {
	rejecting := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		return r.Reject(ctx, 404, nil, []byte("no such room"))
	}, nil)
	for _, url := range []string{"ws://127.0.0.1:1/", rejecting} {
		ran := false
		err := wsconn.Open(ctxTimeout(t, 10*time.Second), url, nil, func(context.Context, *wsconn.Conn) error {
			ran = true
			return nil
		})
		if err == nil || ran {
			t.Fatalf("Open(%s) = %v, fn ran: %v", url, err, ran)
		}
		var re *wsconn.ConnectionRejectedError
		if rejected := errors.As(err, &re); rejected != (url == rejecting) || (rejected && (re.StatusCode != 404 || string(re.Body) != "no such room")) {
			t.Fatalf("Open(%s) = %v, want Dial's error as it is", url, err)
		}
	}
}

// The closing handshake still runs when Open's ctx was cancelled: fn sees
// the cancellation, the server sees 1001 (going away).
func TestOpenCancelledCtxClosesGoingAway(t *testing.T) {
	url, ended := closeWatcher(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := wsconn.Open(ctx, url, nil, func(ctx context.Context, c *wsconn.Conn) error {
		cancel()
		waitDone(t, ctx)
		if cause := context.Cause(ctx); cause != context.Canceled {
			t.Errorf("cause = %v, want the caller's context.Canceled", cause)
		}
		return ctx.Err()
	})
	if err != context.Canceled {
		t.Fatalf("Open = %v, want fn's context.Canceled", err)
	}
	wantClosed(t, within(t, 10*time.Second, ended), wsconn.StatusGoingAway, "")
}

// A panicking fn still leaves no connection behind (closed with 1011, as a
// failing server handler's is); the panic goes on.
func TestOpenFnPanics(t *testing.T) {
	url, ended := closeWatcher(t)
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want the panic to propagate", v)
			}
		}()
		wsconn.Open(ctxTimeout(t, 10*time.Second), url, nil, func(context.Context, *wsconn.Conn) error {
			panic("boom")
		})
	}()
	wantClosed(t, within(t, 10*time.Second, ended), wsconn.StatusInternalError, "*")
}

// When a ping's deadline passed without a pong, Open sends Close and drops
// TCP at once instead of waiting DisconnectTimeout for an answer.
func TestOpenDropsDeadPeer(t *testing.T) {
	const disconnect = 30 * time.Second
	t.Run("reads but never answers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ln := newPipeListener()
			gotClose, dropped := make(chan int, 1), make(chan struct{})
			url := rawPeer(t, ln, func(ws *websocket.Conn) {
				ws.SetPingHandler(func(string) error { return nil })
				ws.SetCloseHandler(func(code int, _ string) error { gotClose <- code; return nil })
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						break
					}
				}
				io.Copy(io.Discard, ws.NetConn()) // until the client drops TCP
				close(dropped)
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			var returned time.Time
			err := wsconn.Open(ctx, url, &wsconn.DialOptions{NetDialContext: ln.Dial, DisconnectTimeout: disconnect},
				func(ctx context.Context, c *wsconn.Conn) error {
					pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					defer cancel()
					if err := c.Ping(pctx, nil); !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("Ping = %v, want context.DeadlineExceeded", err)
					}
					returned = time.Now()
					return nil
				})
			if err != nil {
				t.Fatalf("Open = %v, want nil: fn succeeded and closing a dead peer is no error", err)
			}
			if d := time.Since(returned); d >= disconnect/10 {
				t.Fatalf("Open took %v after fn returned, want ≪ DisconnectTimeout (%v)", d, disconnect)
			}
			<-dropped
			select {
			case code := <-gotClose:
				if code != 1000 {
					t.Errorf("peer got Close %d, want 1000", code)
				}
			default:
				t.Error("no Close frame was sent to the dead peer")
			}
		})
	})
	t.Run("never reads", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Repeated: the ping's deadline must be reported as such
			// every time, not only when its timer wins a race.
			for i := range 10 {
				ln := newPipeListener()
				hold := make(chan struct{})
				url := rawPeer(t, ln, func(ws *websocket.Conn) { <-hold })
				t.Cleanup(func() { close(hold) })
				ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
				var returned time.Time
				err := wsconn.Open(ctx, url, &wsconn.DialOptions{NetDialContext: ln.Dial, DisconnectTimeout: disconnect},
					func(ctx context.Context, c *wsconn.Conn) error {
						pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
						defer cancel()
						if err := c.Ping(pctx, nil); !errors.Is(err, context.DeadlineExceeded) {
							t.Errorf("attempt %d: Ping = %v, want context.DeadlineExceeded", i, err)
						}
						returned = time.Now()
						return nil
					})
				cancel()
				if err != nil {
					t.Fatalf("attempt %d: Open = %v, want nil", i, err)
				}
				if d := time.Since(returned); d >= disconnect/10 {
					t.Fatalf("attempt %d: Open took %v after fn returned, want ≪ DisconnectTimeout (%v)", i, d, disconnect)
				}
			}
		})
	})
}

// A live peer that is slow to answer Close is waited for, up to
// DisconnectTimeout; then Open returns ErrDisconnectionTimeout (or fn's
// error when fn failed).
func TestOpenWaitsForSlowPeer(t *testing.T) {
	const disconnect = 10 * time.Second
	sentinel := errors.New("fn failed")
	for _, tc := range []struct {
		name        string
		answerAfter time.Duration // < 0: never
		fnErr       error
		want        error
		took        time.Duration
	}{
		{"never answers", -1, nil, wsconn.ErrDisconnectionTimeout, disconnect},
		{"never answers, fn failed", -1, sentinel, sentinel, disconnect},
		{"answers after 3s", 3 * time.Second, nil, nil, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ln := newPipeListener()
				url := rawPeer(t, ln, func(ws *websocket.Conn) {
					ws.SetCloseHandler(func(int, string) error { return nil })
					for {
						if _, _, err := ws.ReadMessage(); err != nil {
							break // our Close frame
						}
					}
					if tc.answerAfter >= 0 {
						time.Sleep(tc.answerAfter) // a slow peer
						ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
						return // and closes TCP, as a server does
					}
					io.Copy(io.Discard, ws.NetConn()) // alive, silent, until we drop TCP
				})
				ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
				defer cancel()
				var returned time.Time
				err := wsconn.Open(ctx, url, &wsconn.DialOptions{NetDialContext: ln.Dial, DisconnectTimeout: disconnect},
					func(ctx context.Context, c *wsconn.Conn) error {
						pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
						defer cancel()
						if err := c.Ping(pctx, nil); err != nil {
							t.Errorf("Ping to a live peer = %v", err)
						}
						returned = time.Now()
						return tc.fnErr
					})
				if tc.want == sentinel {
					if err != sentinel {
						t.Fatalf("Open = %v, want fn's error itself", err)
					}
				} else if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Fatalf("Open = %v, want %v", err, tc.want)
				}
				if d := time.Since(returned); d != tc.took {
					t.Fatalf("Open took %v after fn returned, want %v", d, tc.took)
				}
			})
		})
	}
}
