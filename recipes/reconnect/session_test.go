package reconnect_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsnursery/wsnursery/recipes/reconnect"
	"github.com/wsnursery/wsnursery/wsconn"
)

// A real server on 127.0.0.1 drops the first connection (1001) and serves
// the second; Run reconnects and the session finishes on the second.
func TestReconnectsToRealServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := 0
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		conns++ // handlers run one after another: the client holds one connection at a time
		if conns == 1 {
			return c.Close(ctx, wsconn.StatusGoingAway, "restarting")
		}
		if err := c.SendText(ctx, fmt.Sprintf("welcome, connection %d", conns)); err != nil {
			return err
		}
		c.Receive(ctx) // until the client closes
		return nil
	}, nil)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	defer func() {
		stop()
		if err := <-served; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want context.Canceled", err)
		}
	}()

	var events []string
	err = reconnect.Run(ctx, "ws://"+ln.Addr().String()+"/", &reconnect.Options{
		InitialDelay: time.Millisecond,
		MaxAttempts:  3,
		OnConnect:    func(c *wsconn.Conn, n int) { events = append(events, fmt.Sprint("connect ", n)) },
		OnRetry: func(retry int, err error, _ time.Duration) {
			var ce *wsconn.ConnectionClosedError
			if !errors.As(err, &ce) || ce.Reason.Code != wsconn.StatusGoingAway {
				t.Errorf("OnRetry error = %v, want the connection closed with 1001", err)
			}
			events = append(events, fmt.Sprint("retry ", retry))
		},
	}, func(ctx context.Context, c *wsconn.Conn) error {
		m, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		events = append(events, string(m.Data))
		return nil
	})
	if err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	want := "connect 0, retry 1, connect 1, welcome, connection 2"
	if got := strings.Join(events, ", "); got != want {
		t.Errorf("events: %s\nwant:   %s", got, want)
	}
}

// A rejection with a 4xx status is permanent by default, except 408 and
// 429; a 5xx is transient.
func TestRejectionClassification(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusUnauthorized, true},
		{http.StatusForbidden, true},
		{http.StatusNotFound, true},
		{http.StatusRequestTimeout, false},
		{http.StatusTooManyRequests, false},
		{http.StatusServiceUnavailable, false},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ln, stop := pipeServer(t, func(ctx context.Context, r *wsconn.Request) error {
					return r.Reject(ctx, tc.status, nil, []byte("no"))
				})
				defer stop()
				var times []time.Time
				err := reconnect.Run(t.Context(), "ws://pipe/", &reconnect.Options{
					Dial:        dialPipe(ln, &times, nil),
					MaxAttempts: 3,
				}, nil)
				var re *wsconn.ConnectionRejectedError
				if !errors.As(err, &re) || re.StatusCode != tc.status {
					t.Fatalf("Run = %v, want a rejection with %d", err, tc.status)
				}
				if got := reconnect.IsPermanent(err); got != tc.permanent {
					t.Errorf("IsPermanent = %v, want %v", got, tc.permanent)
				}
				wantAttempts := 3
				if tc.permanent {
					wantAttempts = 1
				}
				if len(times) != wantAttempts {
					t.Errorf("%d attempts, want %d", len(times), wantAttempts)
				}
				if tc.permanent == errors.Is(err, reconnect.ErrGaveUp) {
					t.Errorf("Run = %v: ErrGaveUp must be wrapped exactly when the rejection is transient", err)
				}
			})
		})
	}
}

// The classifier can be replaced; an error marked Permanent stops Run
// whatever the classifier says.
func TestPermanentMarksAndCustomClassifier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errAuth := errors.New("token expired")
		ln, stop := pipeServer(t, func(ctx context.Context, r *wsconn.Request) error {
			if _, err := r.Accept(ctx, nil); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		})
		defer stop()

		var times []time.Time
		err := reconnect.Run(t.Context(), "ws://pipe/", &reconnect.Options{
			Dial:        dialPipe(ln, &times, nil),
			IsPermanent: func(error) bool { return false },
		}, func(ctx context.Context, c *wsconn.Conn) error {
			return reconnect.Permanent(fmt.Errorf("failed to authenticate: %w", errAuth))
		})
		if !errors.Is(err, errAuth) || err.Error() != "failed to authenticate: token expired" {
			t.Fatalf("Run = %v, want the session's error as it was", err)
		}
		if len(times) != 1 {
			t.Errorf("%d attempts, want 1", len(times))
		}

		times = nil
		err = reconnect.Run(t.Context(), "ws://pipe/", &reconnect.Options{
			Dial:        dialPipe(nil, &times, nil),
			IsPermanent: func(err error) bool { return errors.Is(err, errRefused) },
		}, nil)
		if !errors.Is(err, errRefused) || errors.Is(err, reconnect.ErrGaveUp) || len(times) != 1 {
			t.Fatalf("Run = %v after %d attempts, want errRefused after 1", err, len(times))
		}
		if reconnect.Permanent(nil) != nil {
			t.Error("Permanent(nil) != nil")
		}
	})
}

// The session's ctx is cancelled with the close as its cause the moment
// the connection closes, even if the session is not reading.
func TestSessionContextEndsWithConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln, stop := pipeServer(t, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			return c.Close(ctx, wsconn.StatusTryAgainLater, "busy")
		})
		defer stop()
		var times []time.Time
		err := reconnect.Run(t.Context(), "ws://pipe/", &reconnect.Options{
			Dial:        dialPipe(ln, &times, nil),
			MaxAttempts: 1,
		}, func(ctx context.Context, c *wsconn.Conn) error {
			<-ctx.Done()
			return context.Cause(ctx)
		})
		var ce *wsconn.ConnectionClosedError
		if !errors.As(err, &ce) || ce.Reason.Code != wsconn.StatusTryAgainLater {
			t.Fatalf("Run = %v, want the close (1013) as the session's cause", err)
		}
	})
}

// A session that returns nil ends Run, and the connection closes with 1000;
// a failing session closes it with 1011.
func TestCloseCodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		closed := make(chan wsconn.CloseReason, 2)
		ln, stop := pipeServer(t, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			<-c.Done()
			reason, _ := c.CloseReason()
			closed <- reason
			return nil
		})
		defer stop()
		var times []time.Time
		calls := 0
		err := reconnect.Run(t.Context(), "ws://pipe/", &reconnect.Options{
			Dial: dialPipe(ln, &times, nil),
		}, func(ctx context.Context, c *wsconn.Conn) error {
			calls++
			if calls == 1 {
				return errors.New("session bug")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if r := <-closed; r.Code != wsconn.StatusInternalError {
			t.Errorf("first connection closed with %v, want 1011", r)
		}
		if r := <-closed; r.Code != wsconn.StatusNormalClosure {
			t.Errorf("second connection closed with %v, want 1000", r)
		}
	})
}

// A panicking session closes its connection with 1011 and the panic reaches
// Run's caller; nothing is left running.
func TestSessionPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		closed := make(chan wsconn.CloseReason, 1)
		ln, stop := pipeServer(t, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			<-c.Done()
			reason, _ := c.CloseReason()
			closed <- reason
			return nil
		})
		defer stop()
		var times []time.Time
		func() {
			defer func() {
				if v := recover(); v != "boom" {
					t.Errorf("recovered %v, want boom", v)
				}
			}()
			reconnect.Run(t.Context(), "ws://pipe/", &reconnect.Options{Dial: dialPipe(ln, &times, nil)},
				func(ctx context.Context, c *wsconn.Conn) error { panic("boom") })
		}()
		if r := <-closed; r.Code != wsconn.StatusInternalError {
			t.Errorf("connection closed with %v, want 1011", r)
		}
	})
}

func TestInvalidOptions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	never := func(context.Context, *wsconn.Conn) error {
		t.Error("session ran")
		return nil
	}
	for _, tc := range []struct {
		url  string
		opts reconnect.Options
	}{
		{"ftp://example.invalid/", reconnect.Options{}},
		{"ws://a b/%zz", reconnect.Options{}},
		{"ws://127.0.0.1:1/", reconnect.Options{InitialDelay: -time.Second}},
		{"ws://127.0.0.1:1/", reconnect.Options{InitialDelay: time.Minute, MaxDelay: time.Second}},
		{"ws://127.0.0.1:1/", reconnect.Options{Multiplier: 0.5}},
		{"ws://127.0.0.1:1/", reconnect.Options{Jitter: 1.5}},
		{"ws://127.0.0.1:1/", reconnect.Options{ResetAfter: -1}},
		{"ws://127.0.0.1:1/", reconnect.Options{MaxAttempts: -1}},
	} {
		err := reconnect.Run(ctx, tc.url, &tc.opts, never)
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run(%q, %+v) = %v, want an error at once", tc.url, tc.opts, err)
		}
	}
}
