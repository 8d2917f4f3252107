package app_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsnursery/wsnursery/heartbeat"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/recipes/app"
	"github.com/wsnursery/wsnursery/recipes/reconnect"
	"github.com/wsnursery/wsnursery/wsconn"
)

// The handlers below send with context.WithoutCancel(ctx): the handler's ctx
// ends when the client closes, which may be right after it received the
// message, and wsconn's Send can then report a complete write as aborted
// (reported in /tmp/wsconn-bugs.md, "Send reports connection aborted...").

// Over 127.0.0.1: OnOpen, then each message in order, then OnClose; ErrStop
// closes with 1000 and Run returns nil.
func TestCallbacksInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, url := listen(t)
	serverSaw := make(chan wsconn.CloseReason, 1)
	stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		m, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		for i := 1; i <= 2; i++ {
			if err := c.SendText(context.WithoutCancel(ctx), fmt.Sprintf("%s %d", m.Data, i)); err != nil {
				return err
			}
		}
		serverSaw <- closeReason(c)
		return nil
	}, nil)
	defer stop()

	var rec recorder
	a := &app.App{
		OnOpen: func(ctx context.Context, c *wsconn.Conn) error {
			rec.add("open")
			return c.SendText(ctx, "hello")
		},
		OnMessage: func(ctx context.Context, c *wsconn.Conn, m wsconn.Message) error {
			rec.add("message " + string(m.Data))
			if strings.HasSuffix(string(m.Data), "2") {
				return app.ErrStop
			}
			return nil
		},
		OnError: func(err error) { rec.add("error " + err.Error()) },
		OnClose: func(code wsconn.StatusCode, reason string) { rec.add(fmt.Sprint("close ", int(code))) },
	}
	if err := a.Run(ctx, url); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	want := []string{"open", "message hello 1", "message hello 2", "close 1000"}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Errorf("callbacks: %q\nwant:      %q", got, want)
	}
	select {
	case r := <-serverSaw:
		if r.Code != wsconn.StatusNormalClosure {
			t.Errorf("server saw %v, want 1000", r)
		}
	case <-ctx.Done():
		t.Fatal("server handler did not see the close")
	}
}

// A callback that fails or panics closes the connection with 1011; OnError
// gets the failure and Run returns it, without reconnecting.
func TestFailingCallback(t *testing.T) {
	errBad := errors.New("bad message")
	for _, tc := range []struct {
		name      string
		onMessage func() error
		check     func(t *testing.T, err error)
	}{
		{"error", func() error { return errBad }, func(t *testing.T, err error) {
			if err != errBad {
				t.Errorf("got %v, want the callback's error itself", err)
			}
		}},
		{"panic", func() error { panic("boom") }, func(t *testing.T, err error) {
			var pe *nursery.PanicError
			if !errors.As(err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 {
				t.Errorf("got %v, want a *nursery.PanicError for boom with a stack", err)
			}
		}},
	} {
		for _, withReconnect := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/reconnect=%v", tc.name, withReconnect), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					ln := newPipeListener()
					serverSaw := make(chan wsconn.CloseReason, 4)
					stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
						c, err := r.Accept(ctx, nil)
						if err != nil {
							return err
						}
						if err := c.SendText(context.WithoutCancel(ctx), "x"); err != nil {
							return err
						}
						serverSaw <- closeReason(c)
						return nil
					}, nil)
					defer stop()
					var errs []error
					var closes []wsconn.StatusCode
					a := &app.App{
						DialOptions: pipeOptions(ln),
						OnMessage:   func(context.Context, *wsconn.Conn, wsconn.Message) error { return tc.onMessage() },
						OnError:     func(err error) { errs = append(errs, err) },
						OnClose:     func(code wsconn.StatusCode, _ string) { closes = append(closes, code) },
					}
					if withReconnect {
						a.Reconnect = &reconnect.Options{MaxAttempts: 5}
					}
					err := a.Run(t.Context(), "ws://pipe/")
					tc.check(t, err)
					if len(errs) != 1 || errs[0] != err {
						t.Errorf("OnError got %v, want once with Run's error", errs)
					}
					if !slices.Equal(closes, []wsconn.StatusCode{wsconn.StatusInternalError}) {
						t.Errorf("OnClose got %v, want [1011]", closes)
					}
					if r := <-serverSaw; r.Code != wsconn.StatusInternalError {
						t.Errorf("server saw %v, want 1011", r)
					}
					if len(serverSaw) != 0 {
						t.Errorf("%d more connections, want none", len(serverSaw))
					}
				})
			})
		}
	}
}

// A callback blocked on its ctx is released when the peer closes; nothing
// is left running once Run returns.
func TestBlockedCallbackReleasedByClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			if err := c.SendText(ctx, "wait"); err != nil {
				return err
			}
			time.Sleep(time.Minute)
			return c.Close(ctx, wsconn.StatusGoingAway, "restart")
		}, nil)
		defer stop()
		start := time.Now()
		var cause error
		var released time.Duration
		var rec recorder
		a := &app.App{
			DialOptions: pipeOptions(ln),
			OnMessage: func(ctx context.Context, c *wsconn.Conn, m wsconn.Message) error {
				<-ctx.Done()
				cause, released = context.Cause(ctx), time.Since(start)
				return ctx.Err()
			},
			OnError: func(err error) { rec.add("error " + err.Error()) },
			OnClose: func(code wsconn.StatusCode, reason string) { rec.add(fmt.Sprint("close ", int(code), " ", reason)) },
		}
		if err := a.Run(t.Context(), "ws://pipe/"); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		var ce *wsconn.ConnectionClosedError
		if !errors.As(cause, &ce) || ce.Reason.Code != wsconn.StatusGoingAway {
			t.Errorf("callback ctx cause = %v, want the close (1001)", cause)
		}
		if released != time.Minute {
			t.Errorf("callback released after %v, want 1m0s", released)
		}
		if got := rec.get(); !slices.Equal(got, []string{"close 1001 restart"}) {
			t.Errorf("callbacks: %q, want only the close", got)
		}
	})
}

// Served inside a handler, whose ctx ends the moment the connection closes,
// the App still delivers every message that arrived before the close.
func TestServeDeliversMessagesQueuedBeforeClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, url := listen(t)
	var rec recorder
	served := make(chan error, 1)
	a := &app.App{
		OnMessage: func(ctx context.Context, c *wsconn.Conn, m wsconn.Message) error {
			if string(m.Data) == "1" {
				<-c.Done() // the rest is queued and the connection closed meanwhile
			}
			rec.add("message " + string(m.Data))
			return nil
		},
		OnClose: func(code wsconn.StatusCode, reason string) { rec.add(fmt.Sprint("close ", int(code))) },
	}
	stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		err = a.Serve(ctx, c)
		served <- err
		return err
	}, &wsconn.ServerOptions{MessageQueueSize: 8})
	defer stop()

	err := wsconn.Open(ctx, url, nil, func(ctx context.Context, c *wsconn.Conn) error {
		for _, s := range []string{"1", "2", "3"} {
			if err := c.SendText(ctx, s); err != nil {
				return err
			}
		}
		return nil // Open closes with 1000
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return")
	}
	want := []string{"message 1", "message 2", "message 3", "close 1000"}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Errorf("callbacks: %q\nwant:      %q", got, want)
	}
}

// The heartbeat pings every PingInterval and OnPong hears each answer.
func TestOnPongFromHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			time.Sleep(35 * time.Second) // the reader answers the pings meanwhile
			return c.Close(ctx, wsconn.StatusNormalClosure, "")
		}, nil)
		defer stop()
		var pongs []time.Duration
		start := time.Now()
		a := &app.App{
			DialOptions:  pipeOptions(ln),
			PingInterval: 10 * time.Second,
			PingTimeout:  5 * time.Second,
			OnPong:       func(rtt time.Duration) { pongs = append(pongs, time.Since(start)) },
		}
		if err := a.Run(t.Context(), "ws://pipe/"); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second}
		if !slices.Equal(pongs, want) {
			t.Errorf("pongs at %v, want %v", pongs, want)
		}
	})
}

// A peer whose reader is stuck answers no ping: the heartbeat drops the
// connection and Run reports heartbeat.ErrTooSlow (over 127.0.0.1, so that
// the pings are written and wait for pongs that never come).
func TestHeartbeatDropsDeadPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, url := listen(t)
	stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
		if _, err := r.Accept(ctx, nil); err != nil {
			return err
		}
		// Never Receive: after two messages the reader stops reading, until
		// the server shuts down.
		<-ctx.Done()
		return nil
	}, nil)
	defer stop()
	var errs []error
	var closes []wsconn.StatusCode
	a := &app.App{
		PingInterval: 100 * time.Millisecond,
		PingTimeout:  50 * time.Millisecond,
		OnOpen: func(ctx context.Context, c *wsconn.Conn) error {
			for range 2 {
				if err := c.SendText(ctx, "fill the queue"); err != nil {
					return err
				}
			}
			return nil
		},
		OnError: func(err error) { errs = append(errs, err) },
		OnClose: func(code wsconn.StatusCode, _ string) { closes = append(closes, code) },
	}
	err := a.Run(ctx, url)
	if !errors.Is(err, heartbeat.ErrTooSlow) {
		t.Fatalf("Run = %v, want heartbeat.ErrTooSlow", err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], heartbeat.ErrTooSlow) {
		t.Errorf("OnError got %v, want ErrTooSlow once", errs)
	}
	if !slices.Equal(closes, []wsconn.StatusCode{wsconn.StatusInternalError}) {
		t.Errorf("OnClose got %v, want [1011]", closes)
	}
}

// With Reconnect the App dials again after the peer closes, calling OnOpen
// and OnClose for each connection.
func TestReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		conns := 0
		stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			conns++
			if conns == 1 {
				return c.Close(ctx, wsconn.StatusGoingAway, "restart")
			}
			if err := c.SendText(context.WithoutCancel(ctx), "welcome back"); err != nil {
				return err
			}
			closeReason(c)
			return nil
		}, nil)
		defer stop()
		var rec recorder
		start := time.Now()
		a := &app.App{
			Reconnect: &reconnect.Options{
				Dial: func(ctx context.Context, url string, _ *wsconn.DialOptions) (*wsconn.Conn, error) {
					rec.add(fmt.Sprint("dial at ", time.Since(start)))
					return wsconn.Dial(ctx, url, pipeOptions(ln))
				},
				InitialDelay: time.Second,
				Jitter:       -1,
			},
			OnOpen: func(context.Context, *wsconn.Conn) error { rec.add("open"); return nil },
			OnMessage: func(ctx context.Context, c *wsconn.Conn, m wsconn.Message) error {
				rec.add("message " + string(m.Data))
				return app.ErrStop
			},
			OnError: func(err error) { rec.add("error " + err.Error()) },
			OnClose: func(code wsconn.StatusCode, reason string) { rec.add(fmt.Sprint("close ", int(code), " ", reason)) },
		}
		if err := a.Run(t.Context(), "ws://pipe/"); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		want := []string{"dial at 0s", "open", "close 1001 restart", "dial at 1s", "open", "message welcome back", "close 1000 "}
		if got := rec.get(); !slices.Equal(got, want) {
			t.Errorf("events: %q\nwant:   %q", got, want)
		}
	})
}

// Cancelling Run's ctx closes the connection with 1001 and returns ctx's
// error, without OnError.
func TestCancelRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		serverSaw := make(chan wsconn.CloseReason, 1)
		stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			serverSaw <- closeReason(c)
			return nil
		}, nil)
		defer stop()
		ctx, cancel := context.WithCancel(t.Context())
		var rec recorder
		a := &app.App{
			DialOptions: pipeOptions(ln),
			OnOpen: func(context.Context, *wsconn.Conn) error {
				time.AfterFunc(time.Minute, cancel)
				return nil
			},
			OnError: func(err error) { rec.add("error " + err.Error()) },
			OnClose: func(code wsconn.StatusCode, reason string) { rec.add(fmt.Sprint("close ", int(code))) },
		}
		if err := a.Run(ctx, "ws://pipe/"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		if got := rec.get(); !slices.Equal(got, []string{"close 1001"}) {
			t.Errorf("callbacks: %q, want only close 1001", got)
		}
		if r := <-serverSaw; r.Code != wsconn.StatusGoingAway {
			t.Errorf("server saw %v, want 1001", r)
		}
	})
}

// A connection lost without a closing handshake is reported to OnError and
// to OnClose as 1006; Run returns nil (nothing went wrong on this side).
func TestLostConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		ln.accepted = make(chan net.Conn, 1)
		stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			closeReason(c)
			return nil
		}, nil)
		defer stop()
		var rec recorder
		a := &app.App{
			DialOptions: pipeOptions(ln),
			OnOpen: func(context.Context, *wsconn.Conn) error {
				(<-ln.accepted).Close() // the server's end of the pipe
				return nil
			},
			OnError: func(err error) {
				var ce *wsconn.ConnectionClosedError
				if !errors.As(err, &ce) {
					t.Errorf("OnError(%v), want a *wsconn.ConnectionClosedError", err)
				}
				rec.add("error")
			},
			OnClose: func(code wsconn.StatusCode, reason string) { rec.add(fmt.Sprint("close ", int(code))) },
		}
		if err := a.Run(t.Context(), "ws://pipe/"); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if got := rec.get(); !slices.Equal(got, []string{"error", "close 1006"}) {
			t.Errorf("callbacks: %q, want error then close 1006", got)
		}
	})
}

// Failed dials go to OnError; without Reconnect Run returns the failure,
// with it Run retries and gives up after MaxAttempts.
func TestDialFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errRefused := errors.New("refused (fake)")
		failing := &wsconn.DialOptions{NetDialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errRefused
		}}
		var errs []error
		a := &app.App{
			DialOptions: failing,
			OnError:     func(err error) { errs = append(errs, err) },
			OnOpen: func(context.Context, *wsconn.Conn) error {
				t.Error("OnOpen without a connection")
				return nil
			},
		}
		if err := a.Run(t.Context(), "ws://pipe/"); !errors.Is(err, errRefused) {
			t.Fatalf("Run = %v, want errRefused", err)
		}
		if len(errs) != 1 || !errors.Is(errs[0], errRefused) {
			t.Errorf("OnError got %v, want errRefused once", errs)
		}

		errs = nil
		a.Reconnect = &reconnect.Options{MaxAttempts: 3}
		if err := a.Run(t.Context(), "ws://pipe/"); !errors.Is(err, reconnect.ErrGaveUp) || !errors.Is(err, errRefused) {
			t.Fatalf("Run = %v, want ErrGaveUp wrapping errRefused", err)
		}
		if len(errs) != 3 {
			t.Errorf("OnError called %d times, want 3", len(errs))
		}

		// A panicking OnError ends Run with the panic, with or without
		// Reconnect.
		a.OnError = func(error) { panic("in OnError") }
		for _, rc := range []*reconnect.Options{nil, {MaxAttempts: 3}} {
			a.Reconnect = rc
			var pe *nursery.PanicError
			if err := a.Run(t.Context(), "ws://pipe/"); !errors.As(err, &pe) || pe.Value != "in OnError" {
				t.Errorf("Run (reconnect %v) = %v, want the OnError panic", rc != nil, err)
			}
		}
	})
}

// OnClose and OnPong panics surface as errors too.
func TestObserverPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			closeReason(c)
			return nil
		}, nil)
		defer stop()

		a := &app.App{
			DialOptions: pipeOptions(ln),
			OnOpen:      func(context.Context, *wsconn.Conn) error { return app.ErrStop },
			OnClose:     func(wsconn.StatusCode, string) { panic("in OnClose") },
		}
		var pe *nursery.PanicError
		if err := a.Run(t.Context(), "ws://pipe/"); !errors.As(err, &pe) || pe.Value != "in OnClose" {
			t.Errorf("Run = %v, want the OnClose panic", err)
		}

		var closes []wsconn.StatusCode
		a = &app.App{
			DialOptions:  pipeOptions(ln),
			PingInterval: time.Second,
			OnPong:       func(time.Duration) { panic("in OnPong") },
			OnClose:      func(code wsconn.StatusCode, _ string) { closes = append(closes, code) },
		}
		if err := a.Run(t.Context(), "ws://pipe/"); !errors.As(err, &pe) || pe.Value != "in OnPong" {
			t.Errorf("Run = %v, want the OnPong panic", err)
		}
		if !slices.Equal(closes, []wsconn.StatusCode{wsconn.StatusInternalError}) {
			t.Errorf("OnClose got %v, want [1011]", closes)
		}
	})
}

func TestInvalidPingSettings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, a := range []*app.App{
		{PingInterval: 10 * time.Second, PingTimeout: 10 * time.Second},
		{PingInterval: 5 * time.Second, PingTimeout: 10 * time.Second},
		{PingTimeout: 5 * time.Second},
		{PingInterval: -time.Second},
		{PingInterval: time.Second, PingTimeout: -time.Second},
	} {
		a.OnOpen = func(context.Context, *wsconn.Conn) error {
			t.Error("connected despite invalid settings")
			return app.ErrStop
		}
		err := a.Run(ctx, "ws://127.0.0.1:1/")
		if err == nil || !strings.HasPrefix(err.Error(), "app: ") {
			t.Errorf("Run with PingInterval %v, PingTimeout %v = %v, want a settings error", a.PingInterval, a.PingTimeout, err)
		}
	}
}

// OnPing sees the peer's pings in order on Run's connections, with and
// without Reconnect; the DialOptions' own OnPing still sees them, and the
// App's DialOptions are left as they were.
func TestOnPingRun(t *testing.T) {
	payloads := []string{"ping 1", "ping 2", "ping 3"}
	for _, withReconnect := range []bool{false, true} {
		t.Run(fmt.Sprintf("reconnect=%v", withReconnect), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ln := newPipeListener()
				sawAll := make(chan struct{})
				stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
					c, err := r.Accept(ctx, nil)
					if err != nil {
						return err
					}
					for _, p := range payloads {
						if err := c.Ping(ctx, []byte(p)); err != nil {
							return err
						}
					}
					select {
					case <-sawAll:
					case <-ctx.Done():
						return ctx.Err()
					}
					if err := c.SendText(context.WithoutCancel(ctx), "bye"); err != nil {
						return err
					}
					closeReason(c)
					return nil
				}, nil)
				defer stop()

				var userSaw recorder
				userHook := func(p []byte) { userSaw.add(string(p)) }
				opts := pipeOptions(ln)
				opts.OnPing = userHook
				var got []string
				a := &app.App{
					DialOptions: opts,
					OnPing: func(p []byte) {
						if got = append(got, string(p)); len(got) == len(payloads) {
							close(sawAll)
						}
					},
					OnMessage: func(context.Context, *wsconn.Conn, wsconn.Message) error { return app.ErrStop },
				}
				if withReconnect {
					a.Reconnect = &reconnect.Options{MaxAttempts: 1}
				}
				if err := a.Run(t.Context(), "ws://pipe/"); err != nil {
					t.Fatalf("Run = %v, want nil", err)
				}
				if !slices.Equal(got, payloads) {
					t.Errorf("OnPing saw %q, want %q", got, payloads)
				}
				if got := userSaw.get(); !slices.Equal(got, payloads) {
					t.Errorf("DialOptions.OnPing saw %q, want %q", got, payloads)
				}
				if reflect.ValueOf(a.DialOptions.OnPing).Pointer() != reflect.ValueOf(userHook).Pointer() {
					t.Error("Run replaced the App's DialOptions.OnPing")
				}
			})
		})
	}
}

// A server App sees the client's pings through ServeRequest, up to those
// that arrived just before the client closed.
func TestOnPingServe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		served := make(chan error, 1)
		var got []string
		var closes []wsconn.StatusCode
		a := &app.App{
			OnPing:  func(p []byte) { got = append(got, string(p)) },
			OnClose: func(code wsconn.StatusCode, _ string) { closes = append(closes, code) },
		}
		var userSaw recorder
		userOpts := &wsconn.AcceptOptions{OnPing: func(p []byte) { userSaw.add(string(p)) }}
		stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
			err := a.ServeRequest(ctx, r, userOpts)
			served <- err
			return err
		}, nil)
		defer stop()

		err := wsconn.Open(t.Context(), "ws://pipe/", pipeOptions(ln), func(ctx context.Context, c *wsconn.Conn) error {
			for _, p := range []string{"a", "b", "c"} {
				if err := c.Ping(ctx, []byte(p)); err != nil {
					return err
				}
			}
			return c.Ping(ctx, []byte("d")) // then Open closes with 1000
		})
		if err != nil {
			t.Fatalf("Open = %v", err)
		}
		if err := <-served; err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
		want := []string{"a", "b", "c", "d"}
		if !slices.Equal(got, want) {
			t.Errorf("OnPing saw %q, want %q", got, want)
		}
		if got := userSaw.get(); !slices.Equal(got, want) {
			t.Errorf("AcceptOptions.OnPing saw %q, want %q", got, want)
		}
		if userOpts.Subprotocol != "" || userOpts.Header != nil || userOpts.OnPing == nil {
			t.Errorf("ServeRequest changed the options: %+v", userOpts)
		}
		if !slices.Equal(closes, []wsconn.StatusCode{wsconn.StatusNormalClosure}) {
			t.Errorf("OnClose got %v, want [1000]", closes)
		}
	})
}

// While OnPing is busy, PingQueueSize pings wait and the rest are dropped;
// the waiting ones are delivered, in order, even though the peer closed.
func TestOnPingQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		entered, synced, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
		const sent = app.PingQueueSize + 4
		stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			for i := 1; i <= sent; i++ {
				if err := c.Ping(ctx, []byte(fmt.Sprint(i))); err != nil {
					return err
				}
				if i == 1 {
					<-entered // OnPing holds ping 1; the queue is empty
				}
			}
			// The client's reader has answered the last ping, but may not
			// have queued it yet; it has once it has seen this pong.
			if err := c.Pong(ctx, []byte("sync")); err != nil {
				return err
			}
			<-synced
			close(release)
			return c.Close(ctx, wsconn.StatusNormalClosure, "")
		}, nil)
		defer stop()
		opts := pipeOptions(ln)
		opts.OnPong = func(p []byte) {
			if string(p) == "sync" {
				close(synced)
			}
		}
		var got []string
		a := &app.App{
			DialOptions: opts,
			OnPing: func(p []byte) {
				if got = append(got, string(p)); len(got) == 1 {
					close(entered)
					<-release
				}
			},
		}
		if err := a.Run(t.Context(), "ws://pipe/"); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		var want []string
		for i := 1; i <= 1+app.PingQueueSize; i++ {
			want = append(want, fmt.Sprint(i))
		}
		if !slices.Equal(got, want) {
			t.Errorf("OnPing saw %q\nwant %q", got, want)
		}
	})
}

// An OnPing that panics closes the connection with 1011; the panic goes to
// OnError and is returned, from Run and from Serve.
func TestOnPingPanics(t *testing.T) {
	check := func(t *testing.T, err error, errs []error, closes []wsconn.StatusCode, peerSaw wsconn.CloseReason) {
		t.Helper()
		var pe *nursery.PanicError
		if !errors.As(err, &pe) || pe.Value != "in OnPing" {
			t.Errorf("got %v, want the OnPing panic", err)
		}
		if len(errs) != 1 || errs[0] != err {
			t.Errorf("OnError got %v, want once with the returned error", errs)
		}
		if !slices.Equal(closes, []wsconn.StatusCode{wsconn.StatusInternalError}) {
			t.Errorf("OnClose got %v, want [1011]", closes)
		}
		if peerSaw.Code != wsconn.StatusInternalError {
			t.Errorf("peer saw %v, want 1011", peerSaw)
		}
	}
	newApp := func(errs *[]error, closes *[]wsconn.StatusCode) *app.App {
		return &app.App{
			OnPing:  func([]byte) { panic("in OnPing") },
			OnError: func(err error) { *errs = append(*errs, err) },
			OnClose: func(code wsconn.StatusCode, _ string) { *closes = append(*closes, code) },
		}
	}

	t.Run("Run", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ln := newPipeListener()
			serverSaw := make(chan wsconn.CloseReason, 1)
			stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
				c, err := r.Accept(ctx, nil)
				if err != nil {
					return err
				}
				if err := c.Ping(ctx, []byte("boom")); err != nil {
					return err
				}
				serverSaw <- closeReason(c)
				return nil
			}, nil)
			defer stop()
			var errs []error
			var closes []wsconn.StatusCode
			a := newApp(&errs, &closes)
			a.DialOptions = pipeOptions(ln)
			err := a.Run(t.Context(), "ws://pipe/")
			check(t, err, errs, closes, <-serverSaw)
		})
	})

	t.Run("Serve", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ln := newPipeListener()
			var errs []error
			var closes []wsconn.StatusCode
			a := newApp(&errs, &closes)
			served := make(chan error, 1)
			stop := serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
				served <- a.ServeRequest(ctx, r, nil)
				return nil
			}, nil)
			defer stop()
			c, err := wsconn.Dial(t.Context(), "ws://pipe/", pipeOptions(ln))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Ping(t.Context(), []byte("boom")); err != nil {
				t.Fatal(err)
			}
			clientSaw := closeReason(c)
			check(t, <-served, errs, closes, clientSaw)
		})
	})
}
