package heartbeat_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsnursery/wsnursery/heartbeat"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// closedError stands in for the connection-closed error of a real
// connection.
type closedError struct{}

func (*closedError) Error() string { return "connection closed" }

// fakePinger records when each ping was sent and answers it with answer.
type fakePinger struct {
	start  time.Time
	answer func(ctx context.Context, i int) error // i counts pings from 0

	mu       sync.Mutex
	sent     []time.Duration // since start
	payloads [][]byte
}

func newFake(answer func(ctx context.Context, i int) error) *fakePinger {
	return &fakePinger{start: time.Now(), answer: answer}
}

func (f *fakePinger) Ping(ctx context.Context, payload []byte) error {
	f.mu.Lock()
	i := len(f.sent)
	f.sent = append(f.sent, time.Since(f.start))
	f.payloads = append(f.payloads, payload)
	f.mu.Unlock()
	return f.answer(ctx, i)
}

func (f *fakePinger) pings() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

// pongAfter answers every ping after d, as a well-behaved connection would:
// unless ctx is done first, in which case it returns ctx's cause.
func pongAfter(d time.Duration) func(context.Context, int) error {
	return func(ctx context.Context, _ int) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// silent never answers: it returns ctx.Err() once ctx is done.
func silent(ctx context.Context, _ int) error {
	<-ctx.Done()
	return ctx.Err()
}

// then answers the first n pings with first and the rest with rest.
func then(n int, first, rest func(context.Context, int) error) func(context.Context, int) error {
	return func(ctx context.Context, i int) error {
		if i < n {
			return first(ctx, i)
		}
		return rest(ctx, i)
	}
}

func secs(s ...float64) []time.Duration {
	var ds []time.Duration
	for _, x := range s {
		ds = append(ds, time.Duration(math.Round(x*float64(time.Second))))
	}
	return ds
}

func TestRoundsAreSpacedByInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := newFake(pongAfter(100 * time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), 16*time.Second)
		defer cancel()

		err := heartbeat.Run(ctx, ws, &heartbeat.Options{Timeout: time.Second, Interval: 5 * time.Second})

		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, heartbeat.ErrTooSlow) {
			t.Errorf("Run = %v, want the parent's context.DeadlineExceeded", err)
		}
		if d := time.Since(ws.start); d != 16*time.Second {
			t.Errorf("Run returned after %v, want 16s, at the parent's deadline", d)
		}
		// The first ping goes out at once; each later one an interval after
		// the previous pong.
		if got, want := ws.pings(), secs(0, 5.1, 10.2, 15.3); !slices.Equal(got, want) {
			t.Errorf("pings sent at %v, want %v", got, want)
		}
		for i, p := range ws.payloads {
			if p != nil {
				t.Errorf("ping %d payload = %q, want nil", i, p)
			}
		}
	})
}

// A nil *Options, or a zero field, means the defaults: 20 s for the pong,
// 20 s between rounds.
func TestDefaults(t *testing.T) {
	if heartbeat.DefaultTimeout != 20*time.Second || heartbeat.DefaultInterval != 20*time.Second {
		t.Fatalf("defaults are %v, %v; the docs say 20s and 20s", heartbeat.DefaultTimeout, heartbeat.DefaultInterval)
	}
	tests := []struct {
		name      string
		opts      *heartbeat.Options
		timeout   string
		pings     []time.Duration // sent at
		tooSlowAt time.Duration   // the third ping goes unanswered
	}{
		{"nil", nil, "20s", secs(0, 20.1, 40.2), secs(60.2)[0]},
		{"zero", &heartbeat.Options{}, "20s", secs(0, 20.1, 40.2), secs(60.2)[0]},
		{"timeout only", &heartbeat.Options{Timeout: time.Second}, "1s", secs(0, 20.1, 40.2), secs(41.2)[0]},
		{"interval only", &heartbeat.Options{Interval: 5 * time.Second}, "20s", secs(0, 5.1, 10.2), secs(30.2)[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ws := newFake(then(2, pongAfter(100*time.Millisecond), silent))
				err := heartbeat.Run(context.Background(), ws, tt.opts)
				checkTooSlow(t, err, tt.timeout)
				if got := ws.pings(); !slices.Equal(got, tt.pings) {
					t.Errorf("pings sent at %v, want %v", got, tt.pings)
				}
				if d := time.Since(ws.start); d != tt.tooSlowAt {
					t.Errorf("Run returned after %v, want %v", d, tt.tooSlowAt)
				}
			})
		})
	}
}

// Run does not write the defaults into the caller's Options.
func TestOptionsNotModified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		closed := &closedError{}
		opts := &heartbeat.Options{}
		ws := newFake(func(context.Context, int) error { return closed })
		if err := heartbeat.Run(context.Background(), ws, opts); err != closed {
			t.Fatalf("Run = %v, want the closed error", err)
		}
		if opts.Timeout != 0 || opts.Interval != 0 {
			t.Errorf("Run changed the caller's Options to %+v", *opts)
		}
	})
}

func TestLatePongIsTooSlow(t *testing.T) {
	// However the Pinger reacts to the round's deadline, the heartbeat
	// reports a slow peer, at the deadline.
	reactions := map[string]func(context.Context, int) error{
		"returns ctx.Err":    silent,
		"returns Cause":      pongAfter(time.Hour),
		"returns wrapped":    func(ctx context.Context, _ int) error { <-ctx.Done(); return fmt.Errorf("ping: %w", ctx.Err()) },
		"returns conn error": func(ctx context.Context, _ int) error { <-ctx.Done(); return &closedError{} },
	}
	for name, react := range reactions {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ws := newFake(react)
				err := heartbeat.Run(context.Background(), ws, &heartbeat.Options{Timeout: time.Second, Interval: 5 * time.Second})
				checkTooSlow(t, err, "1s")
				if d := time.Since(ws.start); d != time.Second {
					t.Errorf("Run returned after %v, want 1s, the timeout", d)
				}
			})
		})
	}
}

func checkTooSlow(t *testing.T, err error, timeout string) {
	t.Helper()
	var closed *closedError
	switch {
	case !errors.Is(err, heartbeat.ErrTooSlow):
		t.Errorf("Run = %v, want an error matching ErrTooSlow", err)
	case errors.As(err, &closed):
		t.Errorf("Run = %v, which matches the connection-closed error", err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		t.Errorf("Run = %v, which matches a context error", err)
	case !strings.Contains(err.Error(), timeout):
		t.Errorf("Run = %q, want the timeout %s mentioned", err, timeout)
	}
}

func TestPongAfterDeadlineIsTooSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A Pinger that ignores ctx and reports a pong that came too late.
		ws := newFake(then(1, func(context.Context, int) error {
			time.Sleep(3 * time.Second)
			return nil
		}, func(context.Context, int) error { return &closedError{} }))
		err := heartbeat.Run(context.Background(), ws, &heartbeat.Options{Timeout: time.Second, Interval: 5 * time.Second})
		checkTooSlow(t, err, "1s")
		if n := len(ws.pings()); n != 1 {
			t.Errorf("%d pings sent, want 1", n)
		}
	})
}

func TestLatePongInLaterRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := newFake(then(2, pongAfter(100*time.Millisecond), silent))
		err := heartbeat.Run(context.Background(), ws, &heartbeat.Options{Timeout: 2 * time.Second, Interval: 5 * time.Second})
		checkTooSlow(t, err, "2s")
		if d := time.Since(ws.start); d != secs(12.2)[0] {
			t.Errorf("Run returned after %v, want 12.2s: third ping at 10.2s plus the 2s timeout", d)
		}
		if got, want := ws.pings(), secs(0, 5.1, 10.2); !slices.Equal(got, want) {
			t.Errorf("pings sent at %v, want %v", got, want)
		}
	})
}

func TestPingerErrorReturnedUnchanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		closed := &closedError{}
		ws := newFake(then(2, pongAfter(100*time.Millisecond), func(ctx context.Context, _ int) error {
			time.Sleep(300 * time.Millisecond) // fails within the timeout
			return closed
		}))
		err := heartbeat.Run(context.Background(), ws, &heartbeat.Options{Timeout: time.Second, Interval: 5 * time.Second})
		if err != closed {
			t.Errorf("Run = %v, want the Pinger's error itself", err)
		}
		if errors.Is(err, heartbeat.ErrTooSlow) {
			t.Errorf("Run = %v matches ErrTooSlow", err)
		}
		if d := time.Since(ws.start); d != secs(10.5)[0] {
			t.Errorf("Run returned after %v, want 10.5s", d)
		}
	})
}

func TestParentCancelled(t *testing.T) {
	errGone := errors.New("parent gone")
	tests := []struct {
		name     string
		answer   func(context.Context, int) error
		cancelAt time.Duration
	}{
		// Cancelled while waiting for a pong, whatever Ping returns then.
		{"during ping/ctx.Err", silent, 300 * time.Millisecond},
		{"during ping/Cause", pongAfter(time.Hour), 300 * time.Millisecond},
		{"during ping/conn error", func(ctx context.Context, _ int) error { <-ctx.Done(); return &closedError{} }, 300 * time.Millisecond},
		// Cancelled during the pause between rounds.
		{"during interval", pongAfter(100 * time.Millisecond), 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ws := newFake(tt.answer)
				ctx, cancel := context.WithCancelCause(context.Background())
				defer cancel(nil)
				time.AfterFunc(tt.cancelAt, func() { cancel(errGone) })

				err := heartbeat.Run(ctx, ws, &heartbeat.Options{Timeout: time.Second, Interval: 5 * time.Second})

				if err != context.Canceled {
					t.Errorf("Run = %v, want ctx.Err(), context.Canceled", err)
				}
				if d := time.Since(ws.start); d != tt.cancelAt {
					t.Errorf("Run returned after %v, want %v, when the parent was cancelled", d, tt.cancelAt)
				}
			})
		})
	}
}

func TestParentAlreadyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ws := newFake(pongAfter(0))
	if err := heartbeat.Run(ctx, ws, &heartbeat.Options{Timeout: time.Second, Interval: time.Second}); err != context.Canceled {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if n := len(ws.pings()); n != 0 {
		t.Errorf("%d pings sent under a cancelled context, want 0", n)
	}
}

// A parent deadline at or before a round's deadline is the parent's, even
// though the peer is also too slow.
func TestParentDeadlineIsNotTooSlow(t *testing.T) {
	tests := []struct {
		name     string
		answer   func(context.Context, int) error
		deadline time.Duration
	}{
		{"before first round's", silent, 500 * time.Millisecond},
		{"same as first round's", silent, time.Second},
		{"same as first round's/Cause", pongAfter(time.Hour), time.Second},
		{"same as third round's", then(2, pongAfter(100*time.Millisecond), silent), secs(11.2)[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Both timers fire at the same instant; try the race a few times.
			for range 20 {
				synctest.Test(t, func(t *testing.T) {
					ws := newFake(tt.answer)
					ctx, cancel := context.WithTimeout(context.Background(), tt.deadline)
					defer cancel()

					err := heartbeat.Run(ctx, ws, &heartbeat.Options{Timeout: time.Second, Interval: 5 * time.Second})

					if err != context.DeadlineExceeded {
						t.Fatalf("Run = %v, want the parent's context.DeadlineExceeded", err)
					}
					if d := time.Since(ws.start); d != tt.deadline {
						t.Fatalf("Run returned after %v, want %v", d, tt.deadline)
					}
				})
			}
		})
	}
}

// unexpected fails any ping: with invalid arguments none may be sent.
func unexpected(context.Context, int) error { return errors.New("unexpected ping") }

func TestInvalidArguments(t *testing.T) {
	tests := []struct {
		name     string
		nilWS    bool
		opts     *heartbeat.Options
		contains string
	}{
		{"negative timeout", false, &heartbeat.Options{Timeout: -time.Second, Interval: time.Second}, "timeout"},
		{"negative interval", false, &heartbeat.Options{Timeout: time.Second, Interval: -1}, "interval"},
		{"negative jitter", false, &heartbeat.Options{Timeout: time.Second, Jitter: -0.1}, "jitter"},
		{"jitter above 1", false, &heartbeat.Options{Timeout: time.Second, Jitter: 1.5}, "jitter"},
		{"NaN jitter", false, &heartbeat.Options{Timeout: time.Second, Jitter: math.NaN()}, "jitter"},
		{"nil pinger", true, &heartbeat.Options{Timeout: time.Second}, "Pinger"},
		{"nil pinger, nil options", true, nil, "Pinger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ws := newFake(unexpected)
				var p heartbeat.Pinger = ws
				if tt.nilWS {
					p = nil
				}
				err := heartbeat.Run(context.Background(), p, tt.opts)
				if err == nil || !strings.Contains(err.Error(), tt.contains) {
					t.Errorf("Run = %v, want an error about %s", err, tt.contains)
				}
				if n := len(ws.pings()); n != 0 {
					t.Errorf("%d pings sent, want none", n)
				}
				if d := time.Since(ws.start); d != 0 {
					t.Errorf("Run took %v, want an immediate error", d)
				}
			})
		})
	}
}

func TestJitter(t *testing.T) {
	const rounds = 200
	tests := []struct {
		jitter   float64
		min, max time.Duration
	}{
		{0, time.Second, time.Second},
		{0.25, 750 * time.Millisecond, 1250 * time.Millisecond},
		{1, 0, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.jitter), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				closed := &closedError{}
				ws := newFake(then(rounds, pongAfter(0), func(context.Context, int) error { return closed }))
				err := heartbeat.Run(context.Background(), ws, &heartbeat.Options{
					Timeout:  time.Second,
					Interval: time.Second,
					Jitter:   tt.jitter,
				})
				if err != closed {
					t.Fatalf("Run = %v, want the closed error", err)
				}
				sent := ws.pings()
				var pauses []time.Duration
				for i := 1; i < len(sent); i++ {
					pauses = append(pauses, sent[i]-sent[i-1])
				}
				lo, hi := slices.Min(pauses), slices.Max(pauses)
				if lo < tt.min || hi > tt.max {
					t.Errorf("pauses range over [%v, %v], want within [%v, %v]", lo, hi, tt.min, tt.max)
				}
				// With jitter the pauses must actually vary, on both sides
				// of the interval (the chance that 200 draws all fall on one
				// side is 2^-199).
				if tt.jitter > 0 && (lo >= time.Second || hi <= time.Second) {
					t.Errorf("pauses range over [%v, %v], want some on each side of 1s", lo, hi)
				}
			})
		})
	}
}

func TestOnRTT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		delays := []time.Duration{10 * time.Millisecond, 250 * time.Millisecond, 30 * time.Millisecond}
		ws := newFake(then(len(delays),
			func(ctx context.Context, i int) error { return pongAfter(delays[i])(ctx, i) },
			silent, // the fourth ping is not answered: no RTT for it
		))
		var rtts []time.Duration
		err := heartbeat.Run(context.Background(), ws, &heartbeat.Options{
			Timeout:  time.Second,
			Interval: 5 * time.Second,
			OnRTT:    func(rtt time.Duration) { rtts = append(rtts, rtt) },
		})
		checkTooSlow(t, err, "1s")
		if !slices.Equal(rtts, delays) {
			t.Errorf("OnRTT saw %v, want %v", rtts, delays)
		}
	})
}

// A pong that arrives as the parent is cancelled (the connection closing
// right after it, say) still counts: OnRTT sees it, then Run returns the
// parent's error without another ping.
func TestPongAsParentIsCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ws := newFake(then(2, pongAfter(10*time.Millisecond), func(context.Context, int) error {
			time.Sleep(10 * time.Millisecond)
			cancel() // the close lands with the pong
			return nil
		}))
		rounds := 0
		err := heartbeat.Run(ctx, ws, &heartbeat.Options{
			Timeout:  time.Second,
			Interval: time.Second,
			OnRTT:    func(time.Duration) { rounds++ },
		})
		if err != context.Canceled {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		if rounds != 3 {
			t.Errorf("OnRTT saw %d pongs, want 3 (the last answered as the parent was cancelled)", rounds)
		}
		if n := len(ws.pings()); n != 3 {
			t.Errorf("%d pings sent, want 3", n)
		}
	})
}
