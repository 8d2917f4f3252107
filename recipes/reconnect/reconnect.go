// Package reconnect keeps a WebSocket client connected: it dials, runs the
// caller's session on the connection, and when the connection fails dials
// again after an exponential backoff with jitter — the Go counterpart of
// websocket-client's run_forever(reconnect=…).
//
//	err := reconnect.Run(ctx, "wss://example.com/feed", nil,
//		func(ctx context.Context, c *wsconn.Conn) error {
//			for {
//				m, err := c.Receive(ctx)
//				if err != nil {
//					return err // connection lost: Run reconnects
//				}
//				handle(m)
//			}
//		})
//
// Run stops when the session returns nil, when ctx ends, when an error is
// permanent (a 4xx rejection of the handshake by default, or any error
// marked with Permanent), or after Options.MaxAttempts failed attempts in a
// row.
package reconnect

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// Defaults for Options.
const (
	DefaultInitialDelay = 500 * time.Millisecond
	DefaultMaxDelay     = 30 * time.Second
	DefaultMultiplier   = 2.0
	DefaultJitter       = 0.5
	DefaultResetAfter   = 30 * time.Second
)

// ErrGaveUp is wrapped, together with the last failure, by the error Run
// returns when Options.MaxAttempts attempts in a row have failed.
var ErrGaveUp = errors.New("reconnect: gave up")

// Options configures Run. A nil *Options means defaults; so does a zero
// field, except where said otherwise.
type Options struct {
	// DialOptions are passed to every dial.
	DialOptions *wsconn.DialOptions
	// Dial opens a connection; nil means wsconn.Dial. Replace it to pick a
	// different URL or header per attempt (a fresh token, a fallback
	// host), or to dial something other than TCP.
	Dial func(ctx context.Context, url string, opts *wsconn.DialOptions) (*wsconn.Conn, error)

	// InitialDelay is the first wait: after the first failed dial, and after
	// a healthy connection (see ResetAfter) is lost. Default 500 ms.
	InitialDelay time.Duration
	// MaxDelay caps the wait. Default 30 s.
	MaxDelay time.Duration
	// Multiplier grows the wait: the n-th retry since the start or since
	// the last healthy connection waits
	// min(MaxDelay, InitialDelay×Multiplier^(n−1)). Must be at least 1.
	// Default 2.
	Multiplier float64
	// Jitter shortens each wait by a random fraction of up to Jitter, so
	// that clients cut off together do not come back together: the wait is
	// drawn uniformly from [d×(1−Jitter), d] and so never exceeds MaxDelay.
	// Must be at most 1. Zero means the default, 0.5; a negative value
	// means no jitter.
	Jitter float64
	// ResetAfter is how long a connection must have lasted to count as
	// healthy: when it is lost, the backoff starts again (the next wait is
	// InitialDelay) and so does the count for MaxAttempts. A connection lost
	// sooner counts as a failed attempt and the waits keep growing, so that
	// a server that accepts and at once drops the client is not dialled in
	// a tight loop. Default 30 s.
	ResetAfter time.Duration
	// MaxAttempts is how many attempts in a row may fail (a failed dial, or
	// a connection that failed before ResetAfter) before Run gives up with
	// an error wrapping ErrGaveUp and the last failure. Zero means no limit.
	MaxAttempts int

	// IsPermanent reports whether a failure — from Dial or from the session
	// — is permanent, so that Run returns it instead of reconnecting. Nil
	// means the package's IsPermanent. An error marked with Permanent is
	// permanent whatever this says.
	IsPermanent func(err error) bool

	// OnConnect, if set, is called after each successful dial, before the
	// session starts, with the number of connections made before this one
	// (0 the first time). It runs on Run's goroutine.
	OnConnect func(c *wsconn.Conn, reconnects int)
	// OnRetry, if set, is called when Run is about to wait before dialling
	// again: retry numbers the retries since the start or the last healthy
	// connection (1 for the first), err is the failure that ended the last
	// attempt, delay the wait. It runs on Run's goroutine.
	OnRetry func(retry int, err error, delay time.Duration)
}

// Permanent marks err as permanent: returned by a session (or by a custom
// Dial), it makes Run return at once instead of reconnecting. The result
// wraps err, so errors.Is and errors.As see through it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent is the default classifier. It reports true for errors marked
// with Permanent, and for a handshake the server rejected with a 4xx status
// (a *wsconn.ConnectionRejectedError), except 408 Request Timeout and 429 Too
// Many Requests, which invite a retry. Everything else — refused or lost
// connections, timeouts, 5xx, any close code — is taken to be transient.
func IsPermanent(err error) bool {
	var pe *permanentError
	if errors.As(err, &pe) {
		return true
	}
	var re *wsconn.ConnectionRejectedError
	if errors.As(err, &re) {
		s := re.StatusCode
		return s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests
	}
	return false
}

// Run keeps a connection to url open and runs session on each connection it
// makes, until one of these ends it:
//
//   - session returns nil: Run closes the connection (1000) and returns nil;
//   - ctx ends: Run returns ctx.Err();
//   - a failure is permanent (see Options.IsPermanent): Run returns it as
//     it is;
//   - MaxAttempts attempts in a row fail: Run returns an error wrapping
//     ErrGaveUp and the last failure.
//
// Any other failure — the dial fails, or session returns an error, which is
// what it does when the connection is lost — is followed by a wait (see
// Options) and a new dial. The first dial happens at once.
//
// Each session runs in its connection's scope (wsconn.Conn.Scope, the rule
// wsconn.Open also follows): its ctx is cancelled as soon as the connection
// closes, with the *wsconn.ConnectionClosedError as the cause, and once
// session returns the connection is closed by the scoping rule — 1000 if
// session returned nil, 1001 (going away) if ctx has ended, 1011 after an
// error or a panic, and nothing new if it has already closed. An error
// that only reports session's ctx cancelled because the connection closed
// counts as that *wsconn.ConnectionClosedError. The closing handshake is
// bounded by the DisconnectTimeout of DialOptions, even when ctx has ended.
// If session panics, the panic continues in Run's caller. No goroutine
// started by Run outlives it.
func Run(ctx context.Context, url string, opts *Options, session func(ctx context.Context, c *wsconn.Conn) error) error {
	o, err := resolve(url, opts)
	if err != nil {
		return err
	}
	// failures counts failed attempts since the last healthy connection,
	// for MaxAttempts; retries counts waits since then, for the backoff.
	failures, retries, connects := 0, 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := o.Dial(ctx, url, o.DialOptions)
		healthy := false
		if err == nil {
			if o.OnConnect != nil {
				o.OnConnect(c, connects)
			}
			connects++
			start := time.Now()
			err = runSession(ctx, c, session)
			if err == nil {
				return nil
			}
			healthy = time.Since(start) >= o.ResetAfter
		}
		if ctx.Err() != nil {
			return ctx.Err() // whatever failed, it failed because of ctx
		}
		if o.isPermanent(err) {
			return err
		}
		if healthy {
			failures, retries = 0, 0
		} else {
			failures++
			if o.MaxAttempts > 0 && failures >= o.MaxAttempts {
				return fmt.Errorf("failed to stay connected to %s: %w after %d attempts in a row: %w", url, ErrGaveUp, failures, err)
			}
		}
		retries++
		d := o.delay(retries)
		if o.OnRetry != nil {
			o.OnRetry(retries, err, d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// resolve applies defaults and checks opts.
func resolve(rawURL string, opts *Options) (*Options, error) {
	o := &Options{}
	if opts != nil {
		*o = *opts
	}
	if o.Dial == nil {
		o.Dial = wsconn.Dial
		// With wsconn.Dial a malformed URL would fail every attempt the
		// same way; say so once instead.
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("failed to reconnect: %w", err)
		}
		switch u.Scheme {
		case "ws", "wss", "http", "https": // as wsconn.Dial takes them
		default:
			return nil, fmt.Errorf("failed to reconnect to %q: scheme must be ws, wss, http or https", rawURL)
		}
	}
	if o.InitialDelay == 0 {
		o.InitialDelay = DefaultInitialDelay
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = max(DefaultMaxDelay, o.InitialDelay)
	}
	if o.Multiplier == 0 {
		o.Multiplier = DefaultMultiplier
	}
	switch {
	case o.Jitter == 0:
		o.Jitter = DefaultJitter
	case o.Jitter < 0:
		o.Jitter = 0
	}
	if o.ResetAfter == 0 {
		o.ResetAfter = DefaultResetAfter
	}
	switch {
	case o.InitialDelay < 0:
		return nil, fmt.Errorf("reconnect: InitialDelay must not be negative, not %v", o.InitialDelay)
	case o.MaxDelay < o.InitialDelay:
		return nil, fmt.Errorf("reconnect: MaxDelay %v is below InitialDelay %v", o.MaxDelay, o.InitialDelay)
	case !(o.Multiplier >= 1): // also NaN
		return nil, fmt.Errorf("reconnect: Multiplier must be at least 1, not %v", o.Multiplier)
	case !(o.Jitter <= 1):
		return nil, fmt.Errorf("reconnect: Jitter must be at most 1, not %v", o.Jitter)
	case o.ResetAfter < 0:
		return nil, fmt.Errorf("reconnect: ResetAfter must not be negative, not %v", o.ResetAfter)
	case o.MaxAttempts < 0:
		return nil, fmt.Errorf("reconnect: MaxAttempts must not be negative, not %d", o.MaxAttempts)
	}
	return o, nil
}

func (o *Options) isPermanent(err error) bool {
	var pe *permanentError
	if errors.As(err, &pe) {
		return true
	}
	if o.IsPermanent != nil {
		return o.IsPermanent(err)
	}
	return IsPermanent(err)
}

// delay is the wait before the n-th retry (n ≥ 1).
func (o *Options) delay(n int) time.Duration {
	d := float64(o.InitialDelay) * math.Pow(o.Multiplier, float64(n-1))
	if d > float64(o.MaxDelay) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(o.MaxDelay)
	}
	if o.Jitter > 0 {
		d *= 1 - o.Jitter*rand.Float64()
	}
	return time.Duration(d)
}

// runSession runs session on c in c's scope (wsconn.Conn.Scope: its ctx
// ends when c closes, and c is closed by the scoping rule when it returns)
// and returns session's error, or nil when session returned nil, whatever
// closing then returned.
func runSession(ctx context.Context, c *wsconn.Conn, session func(ctx context.Context, c *wsconn.Conn) error) error {
	ok := false
	err := c.Scope(ctx, func(ctx context.Context) error {
		err := session(ctx, c)
		ok = err == nil
		return err
	})
	if ok {
		return nil
	}
	return err
}
