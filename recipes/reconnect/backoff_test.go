package reconnect_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsnursery/wsnursery/recipes/reconnect"
	"github.com/wsnursery/wsnursery/wsconn"
)

// Without jitter the waits double from InitialDelay up to MaxDelay, and
// MaxAttempts failures end Run with ErrGaveUp wrapping the last failure.
func TestBackoffSequenceAndCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var times []time.Time
		var reported []time.Duration
		err := reconnect.Run(t.Context(), "ws://pipe/", &reconnect.Options{
			Dial:         dialPipe(nil, &times, nil),
			InitialDelay: time.Second,
			MaxDelay:     10 * time.Second,
			Jitter:       -1,
			MaxAttempts:  7,
			OnRetry: func(failures int, err error, delay time.Duration) {
				if failures != len(reported)+1 || !errors.Is(err, errRefused) {
					t.Errorf("OnRetry(%d, %v), want (%d, errRefused)", failures, err, len(reported)+1)
				}
				reported = append(reported, delay)
			},
		}, func(context.Context, *wsconn.Conn) error {
			t.Error("session ran without a connection")
			return nil
		})
		if !errors.Is(err, reconnect.ErrGaveUp) || !errors.Is(err, errRefused) {
			t.Fatalf("Run = %v, want ErrGaveUp wrapping the last failure", err)
		}
		want := []time.Duration{1, 2, 4, 8, 10, 10}
		for i := range want {
			want[i] *= time.Second
		}
		if got := gaps(times); !slices.Equal(got, want) {
			t.Errorf("waits between attempts = %v, want %v", got, want)
		}
		if !slices.Equal(reported, want) {
			t.Errorf("OnRetry delays = %v, want %v", reported, want)
		}
		if len(times) != 7 {
			t.Errorf("%d attempts, want 7", len(times))
		}
	})
}

// With jitter each wait lies in [d×(1−Jitter), d] and never exceeds
// MaxDelay; the waits are not all the same.
func TestBackoffJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var times []time.Time
		const attempts = 40
		err := reconnect.Run(t.Context(), "ws://pipe/", &reconnect.Options{
			Dial:         dialPipe(nil, &times, nil),
			InitialDelay: time.Second,
			MaxDelay:     8 * time.Second,
			Multiplier:   2,
			Jitter:       0.5,
			MaxAttempts:  attempts,
		}, nil)
		if !errors.Is(err, reconnect.ErrGaveUp) {
			t.Fatalf("Run = %v, want ErrGaveUp", err)
		}
		capped := map[time.Duration]bool{}
		for i, got := range gaps(times) {
			full := 8 * time.Second
			if i < 3 {
				full = time.Second << i
			}
			if got < full/2 || got > full {
				t.Errorf("wait %d = %v, want within [%v, %v]", i+1, got, full/2, full)
			}
			if full == 8*time.Second {
				capped[got] = true
			}
		}
		if len(capped) < 2 {
			t.Errorf("capped waits took %d distinct values, want jitter to spread them", len(capped))
		}
	})
}

// A connection that lasted ResetAfter resets the backoff; one that failed
// sooner counts as one more failure.
func TestBackoffResetsAfterHealthyConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Successful dials 3, 4 and 6 meet a server that keeps them for
		// 1 min (healthy), 5 s (too short) and until the session stops.
		lifetimes := []time.Duration{time.Minute, 5 * time.Second, 0}
		conns := 0
		ln, stop := pipeServer(t, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			life := lifetimes[conns]
			conns++
			if life == 0 {
				return c.SendText(ctx, "done")
			}
			time.Sleep(life) // virtual time: the connection's lifetime
			return nil       // closes with 1000
		})
		defer stop()
		var times []time.Time
		var reconnects []int
		err := reconnect.Run(t.Context(), "ws://pipe/", &reconnect.Options{
			Dial:         dialPipe(ln, &times, map[int]bool{0: true, 1: true, 2: true, 5: true}),
			InitialDelay: time.Second,
			MaxDelay:     time.Minute,
			Jitter:       -1,
			ResetAfter:   30 * time.Second,
			MaxAttempts:  4,
			OnConnect: func(c *wsconn.Conn, n int) {
				reconnects = append(reconnects, n)
			},
		}, func(ctx context.Context, c *wsconn.Conn) error {
			m, err := c.Receive(ctx)
			if err != nil {
				return err
			}
			if string(m.Data) != "done" {
				t.Errorf("got %q, want done", m.Data)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		s := time.Second
		// Attempts: fail, fail, fail, up 1 min, up 5 s, fail, up.
		want := []time.Duration{1 * s, 2 * s, 4 * s, time.Minute + 1*s, 5*s + 2*s, 4 * s}
		if got := gaps(times); !slices.Equal(got, want) {
			t.Errorf("time between attempts = %v, want %v", got, want)
		}
		if !slices.Equal(reconnects, []int{0, 1, 2}) {
			t.Errorf("OnConnect counts = %v, want [0 1 2]", reconnects)
		}
	})
}

// MaxAttempts counts failures since the last healthy connection only.
func TestMaxAttemptsCountsFromLastHealthyConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln, stop := pipeServer(t, func(ctx context.Context, r *wsconn.Request) error {
			if _, err := r.Accept(ctx, nil); err != nil {
				return err
			}
			time.Sleep(time.Minute)
			return nil
		})
		defer stop()
		var times []time.Time
		// Two failures, a healthy connection, then failures until the
		// limit of 3 in a row.
		err := reconnect.Run(t.Context(), "ws://pipe/", &reconnect.Options{
			Dial:         dialPipe(ln, &times, map[int]bool{0: true, 1: true, 3: true, 4: true, 5: true, 6: true}),
			InitialDelay: time.Second,
			Jitter:       -1,
			ResetAfter:   30 * time.Second,
			MaxAttempts:  3,
		}, receiveAll)
		if !errors.Is(err, reconnect.ErrGaveUp) || !errors.Is(err, errRefused) {
			t.Fatalf("Run = %v, want ErrGaveUp wrapping errRefused", err)
		}
		if len(times) != 6 {
			t.Fatalf("%d attempts, want 6 (2 failed, 1 healthy, 3 failed)", len(times))
		}
	})
}

// Cancelling ctx during a wait ends Run at once with ctx's error.
func TestCancelDuringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Minute, cancel)
		var times []time.Time
		start := time.Now()
		err := reconnect.Run(ctx, "ws://pipe/", &reconnect.Options{
			Dial:         dialPipe(nil, &times, nil),
			InitialDelay: time.Hour,
		}, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d != time.Minute {
			t.Errorf("Run returned after %v, want 1m0s", d)
		}
		if len(times) != 1 {
			t.Errorf("%d attempts, want 1", len(times))
		}
	})
}

// Cancelling ctx during a session ends Run with ctx's error and no retry;
// the connection is closed.
func TestCancelDuringSession(t *testing.T) {
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
		ctx, cancel := context.WithCancel(t.Context())
		var times []time.Time
		err := reconnect.Run(ctx, "ws://pipe/", &reconnect.Options{
			Dial:      dialPipe(ln, &times, nil),
			OnConnect: func(*wsconn.Conn, int) { time.AfterFunc(time.Second, cancel) },
		}, func(ctx context.Context, c *wsconn.Conn) error {
			<-ctx.Done()
			return ctx.Err()
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		if len(times) != 1 {
			t.Errorf("%d attempts, want 1", len(times))
		}
		if r := <-closed; r.Code != wsconn.StatusGoingAway {
			t.Errorf("server saw %v, want 1001 (the client is going away)", r)
		}
	})
}
