package wsconn_test

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

var errScope = errors.New("scope failed")

// Conn.Scope (and so Open) closes by the rule: the code follows from how
// fn ended, and a connection that has already closed gets no new frame.
func TestScopeRule(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fn         func(ctx context.Context, c *wsconn.Conn, cancelParent context.CancelFunc) error
		wantCode   wsconn.StatusCode // what the peer received
		wantReason string
		wantErr    func(t *testing.T, err error)
	}{
		{"nil", func(context.Context, *wsconn.Conn, context.CancelFunc) error { return nil },
			wsconn.StatusNormalClosure, "", wantNil},
		{"error", func(context.Context, *wsconn.Conn, context.CancelFunc) error { return errScope },
			wsconn.StatusInternalError, "internal error", wantIs(errScope)},
		{"parent ends, fn returns nil", func(ctx context.Context, _ *wsconn.Conn, cancel context.CancelFunc) error {
			cancel()
			<-ctx.Done()
			return nil
		}, wsconn.StatusGoingAway, "", wantNil},
		{"parent ends, fn returns ctx.Err", func(ctx context.Context, _ *wsconn.Conn, cancel context.CancelFunc) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}, wsconn.StatusGoingAway, "", wantIs(context.Canceled)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, ended := closeWatcher(t)
			c := dial(t, url, nil)
			parent, cancel := context.WithCancel(ctxTimeout(t, 10*time.Second))
			defer cancel()
			err := c.Scope(parent, func(ctx context.Context) error { return tc.fn(ctx, c, cancel) })
			tc.wantErr(t, err)
			wantClosed(t, within(t, 10*time.Second, ended), tc.wantCode, tc.wantReason)
			if r := closeReason(t, c); r.Code != tc.wantCode {
				t.Errorf("CloseReason = %v, want the echo of %v", r, tc.wantCode)
			}
		})
	}

	// The peer closed first: fn's return value does not matter, and
	// nothing replaces the code the peer sent.
	for _, tc := range []struct {
		name    string
		ret     func(ctx context.Context, receiveErr error) error
		wantErr func(t *testing.T, err error)
	}{
		{"own close error", func(_ context.Context, rerr error) error { return rerr }, func(t *testing.T, err error) { wantClosed(t, err, 4000, "peer") }},
		{"cancellation echo", func(ctx context.Context, _ error) error { <-ctx.Done(); return ctx.Err() }, func(t *testing.T, err error) { wantClosed(t, err, 4000, "peer") }},
		{"nil after close", func(context.Context, error) error { return nil }, wantNil},
		{"error after close", func(context.Context, error) error { return errScope }, wantIs(errScope)},
	} {
		t.Run("peer closed, "+tc.name, func(t *testing.T) {
			url, _ := closeWatcher(t)
			c := dial(t, url, nil)
			ctx := ctxTimeout(t, 10*time.Second)
			err := c.Scope(ctx, func(ctx context.Context) error {
				if err := c.SendText(ctx, "close"); err != nil {
					return err
				}
				_, err := c.Receive(context.WithoutCancel(ctx))
				wantClosed(t, err, 4000, "peer")
				return tc.ret(ctx, err)
			})
			tc.wantErr(t, err)
			if r := closeReason(t, c); r != (wsconn.CloseReason{Code: 4000, Reason: "peer"}) {
				t.Errorf("CloseReason = %v, want the peer's 4000 \"peer\"", r)
			}
		})
	}

	t.Run("panic", func(t *testing.T) {
		url, ended := closeWatcher(t)
		c := dial(t, url, nil)
		func() {
			defer func() {
				if v := recover(); v != "boom" {
					t.Errorf("recovered %v, want the panic to propagate", v)
				}
			}()
			c.Scope(ctxTimeout(t, 10*time.Second), func(context.Context) error { panic("boom") })
			t.Error("Scope returned after a panic")
		}()
		wantClosed(t, within(t, 10*time.Second, ended), wsconn.StatusInternalError, "internal error")
	})
}

func wantNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Scope = %v, want nil", err)
	}
}

func wantIs(target error) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if err != target {
			t.Fatalf("Scope = %v, want %v itself", err, target)
		}
	}
}

// The Server's handler path follows the same rule as Conn.Scope.
func TestHandlerRule(t *testing.T) {
	for _, tc := range []struct {
		name       string
		handler    func(ctx context.Context, c *wsconn.Conn) error
		wantCode   wsconn.StatusCode
		wantReason string
	}{
		{"nil", func(context.Context, *wsconn.Conn) error { return nil }, wsconn.StatusNormalClosure, ""},
		{"error", func(context.Context, *wsconn.Conn) error { return errScope }, wsconn.StatusInternalError, "internal error"},
		{"panic", func(context.Context, *wsconn.Conn) error { panic("boom") }, wsconn.StatusInternalError, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs, logger := newLogRecorder(slog.LevelError)
			url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
				c, err := r.Accept(ctx, nil)
				if err != nil {
					return err
				}
				return tc.handler(ctx, c)
			}, &wsconn.ServerOptions{Logger: logger})
			c := dial(t, url, nil)
			_, err := c.Receive(ctxTimeout(t, 10*time.Second))
			wantClosed(t, err, tc.wantCode, tc.wantReason)
			if tc.wantCode == wsconn.StatusNormalClosure {
				if recs := logs.records(); len(recs) > 0 {
					t.Errorf("logged after a handler returned nil:\n%s", logs.dump())
				}
			}
		})
	}

	// The client closed first; the handler returns Receive's error, its
	// ctx's cancellation, nil: none is a failure, nothing new is sent.
	for _, ret := range []string{"close error", "cancellation", "nil"} {
		t.Run("peer closed, "+ret, func(t *testing.T) {
			logs, logger := newLogRecorder(slog.LevelDebug - 1)
			url, stop := serveUntilDone(t, func(ctx context.Context, r *wsconn.Request) error {
				c, err := r.Accept(ctx, nil)
				if err != nil {
					return err
				}
				_, err = c.Receive(ctx)
				switch ret {
				case "close error":
					return err
				case "cancellation":
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}, &wsconn.ServerOptions{Logger: logger, FailFast: true})
			c := dial(t, url, nil)
			if err := c.Close(ctxTimeout(t, 10*time.Second), 4001, "client"); err != nil {
				t.Fatal(err)
			}
			if r := closeReason(t, c); r != (wsconn.CloseReason{Code: 4001, Reason: "client"}) {
				t.Errorf("client's CloseReason = %v, want its own code echoed", r)
			}
			// Serve returns once every handler has; FailFast would make it
			// return the handler's error.
			if err := stop(); err != context.Canceled {
				t.Errorf("Serve = %v, want context.Canceled", err)
			}
			for _, l := range logs.records() {
				if l.Level >= slog.LevelWarn {
					t.Errorf("logged %v", l)
				}
			}
		})
	}
}

// fn calling runtime.Goexit (as t.FailNow does) still leaves no connection
// behind: it closes with 1011, and nothing panics.
func TestScopeGoexit(t *testing.T) {
	url, ended := closeWatcher(t)
	c := dial(t, url, nil)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		c.Scope(ctxTimeout(t, 10*time.Second), func(context.Context) error {
			runtime.Goexit()
			return nil
		})
		t.Error("Scope returned after runtime.Goexit")
	}()
	<-exited
	wantClosed(t, within(t, 10*time.Second, ended), wsconn.StatusInternalError, "internal error")
}
