package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// ErrTooSlow is matched, through errors.Is, by the error [Run] returns when
// the peer does not answer a ping within the timeout.
var ErrTooSlow = errors.New("heartbeat: peer too slow to answer ping")

// A Pinger sends a ping and waits for the matching pong.
//
// Ping must return once the pong has arrived (nil), once ctx is done (any
// error; the heartbeat works out the reason itself), or once the connection
// has failed (an error describing that). Run passes a nil payload, which
// lets the connection choose one.
type Pinger interface {
	Ping(ctx context.Context, payload []byte) error
}

// The defaults used for a nil [Options] or a zero field. They are those of
// the Python websockets library (ping_interval=20, ping_timeout=20), which
// has run them on many deployments: a ping every 20 s keeps an idle
// connection inside the common 60 s idle timeouts of load balancers and NAT
// tables, and 20 s is long enough for a busy or mobile peer to answer while a
// dead one is noticed within about 40 s.
const (
	DefaultTimeout  = 20 * time.Second
	DefaultInterval = 20 * time.Second
)

// Options configures [Run]. A nil *Options means all defaults, and so does a
// zero field.
type Options struct {
	// Timeout is how long each ping may wait for its pong: a pong later
	// than this makes Run fail with [ErrTooSlow]. Zero means
	// [DefaultTimeout]; negative is an error.
	Timeout time.Duration

	// Interval is the pause between a pong and the next ping. Zero means
	// [DefaultInterval]; negative is an error.
	Interval time.Duration

	// Jitter spreads the pauses, so that many connections started together
	// do not ping in step: each pause is drawn uniformly between
	// Interval×(1−Jitter) and Interval×(1+Jitter). It must be within
	// [0, 1]; zero, the default, pauses exactly Interval.
	Jitter float64

	// OnRTT, if not nil, is called after each ping answered in time with
	// the time from sending the ping to receiving the pong, even when ctx
	// ends just as the pong arrives. It runs on the
	// heartbeat's goroutine, so a slow OnRTT delays the next ping.
	OnRTT func(rtt time.Duration)
}

// Run keeps checking that the peer of ws is alive, until it is not or ctx is
// done. It pings ws at once, waits up to opts.Timeout for the pong, pauses
// opts.Interval, and repeats. A nil opts means the defaults. It always
// returns a non-nil error:
//
//   - if a pong does not arrive in time, an error that matches [ErrTooSlow]
//     and gives the timeout;
//   - if Ping fails in time, that error, unchanged (a closed connection, for
//     instance);
//   - if ctx is done, ctx.Err(), promptly — also when Ping fails or times
//     out because of it, so a parent's deadline is never mistaken for a
//     slow peer;
//   - if the arguments are invalid, an error saying so, before any ping.
//
// The usual place for Run is a task next to the connection's reader in a
// nursery: its failure then cancels the reader, and the reader's failure
// cancels it.
func Run(ctx context.Context, ws Pinger, opts *Options) error {
	o, err := withDefaults(ws, opts)
	if err != nil {
		return err
	}
	tooSlow := fmt.Errorf("%w: no pong within %v", ErrTooSlow, o.Timeout)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rtt, err := ping(ctx, ws, o.Timeout, tooSlow)
		if err != nil {
			return err
		}
		if o.OnRTT != nil {
			o.OnRTT(rtt)
		}
		if err := pause(ctx, o.Interval, o.Jitter); err != nil {
			return err
		}
	}
}

// withDefaults checks the arguments and returns a copy of opts with the
// defaults filled in.
func withDefaults(ws Pinger, opts *Options) (Options, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := check(ws, &o); err != nil {
		return o, err
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	return o, nil
}

func check(ws Pinger, opts *Options) error {
	switch {
	case ws == nil:
		return errors.New("heartbeat: nil Pinger")
	case opts.Timeout < 0:
		return fmt.Errorf("heartbeat: timeout must not be negative, not %v", opts.Timeout)
	case opts.Interval < 0:
		return fmt.Errorf("heartbeat: interval must not be negative, not %v", opts.Interval)
	case !(opts.Jitter >= 0 && opts.Jitter <= 1): // also catches NaN
		return fmt.Errorf("heartbeat: jitter must be within [0, 1], not %v", opts.Jitter)
	}
	return nil
}

// ping does one round: it sends a ping and reports the round-trip time, or
// why there was no pong in time. tooSlow is the error for a late pong; it is
// also the cause of the round's context, which is how a late pong is told
// apart from everything else.
func ping(ctx context.Context, ws Pinger, timeout time.Duration, tooSlow error) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	pctx := ctx
	// If the parent's deadline comes first, or at the same moment, it is the
	// only deadline of the round: a timeout is then the parent's, whichever
	// timer the runtime happens to fire first.
	if d, ok := ctx.Deadline(); !ok || d.After(deadline) {
		var cancel context.CancelFunc
		pctx, cancel = context.WithDeadlineCause(ctx, deadline, tooSlow)
		defer cancel()
	}
	err := ws.Ping(pctx, nil)
	rtt := time.Since(start)
	if err == nil && context.Cause(pctx) != tooSlow {
		// The pong came in time. If ctx ended meanwhile (the connection
		// closing just after the pong, say), the round still counts; Run
		// then returns ctx.Err() before the next one.
		return rtt, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err // the parent first: its cancellation is never our failure
	}
	if context.Cause(pctx) == tooSlow {
		// The deadline passed, whatever Ping made of it: an error wrapping
		// the context's, a connection error caused by it, or even a pong
		// that came too late.
		return 0, tooSlow
	}
	if err != nil {
		return 0, err
	}
	return rtt, nil
}

// pause waits for the interval, spread by jitter, or until ctx is done.
func pause(ctx context.Context, interval time.Duration, jitter float64) error {
	d := interval
	if jitter > 0 && interval > 0 {
		d = time.Duration(float64(interval) * (1 + jitter*(2*rand.Float64()-1)))
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
