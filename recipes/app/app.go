// Package app runs a WebSocket connection through callbacks, for those who
// prefer that style: the Go counterpart of websocket-client's WebSocketApp.
//
//	a := &app.App{
//		OnOpen: func(ctx context.Context, c *wsconn.Conn) error {
//			return c.SendText(ctx, `{"subscribe":"prices"}`)
//		},
//		OnMessage: func(ctx context.Context, c *wsconn.Conn, m wsconn.Message) error {
//			fmt.Printf("%s\n", m.Data)
//			return nil
//		},
//		OnClose:      func(code wsconn.StatusCode, reason string) { log.Println("closed", code, reason) },
//		PingInterval: 30 * time.Second,
//		PingTimeout:  10 * time.Second,
//		Reconnect:    &reconnect.Options{},
//	}
//	err := a.Run(ctx, "wss://example.com/stream")
//
// Underneath, each connection is a nursery: a reader that calls the
// callbacks, a heartbeat when PingInterval is set, and, when OnPing is set,
// a task that hands the peer's pings to OnPing. Callbacks run one at a
// time; their ctx is cancelled when the connection closes or Run's ctx
// ends, and Run does not return until every callback has returned, so no
// goroutine outlives it. A callback that fails or panics ends the connection
// with 1011 and its error (a *nursery.PanicError for a panic) is reported to
// OnError and returned.
//
// A server runs an App in its wsconn.Handler with ServeRequest, which
// accepts the request and serves the connection (Serve serves a connection
// accepted elsewhere, without OnPing):
//
//	func handle(ctx context.Context, r *wsconn.Request) error {
//		return a.ServeRequest(ctx, r, nil)
//	}
package app

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/wsnursery/wsnursery/heartbeat"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/recipes/reconnect"
	"github.com/wsnursery/wsnursery/wsconn"
)

// PingQueueSize is how many of the peer's pings may wait, per connection,
// for OnPing; see App.OnPing.
const PingQueueSize = 16

// ErrStop, returned by a callback, ends the connection normally: it is
// closed with 1000, and Run returns nil without reconnecting.
var ErrStop = errors.New("app: stop")

// App holds the callbacks and settings for a connection. Every field is
// optional. An App may be used for any number of connections, including at
// once; its fields must not change while it is in use.
type App struct {
	// OnOpen is called once the connection is open, before any message is
	// delivered.
	OnOpen func(ctx context.Context, c *wsconn.Conn) error
	// OnMessage is called for each message received, in order. Until it
	// returns, no further message is read (which is back-pressure on the
	// peer). Messages that arrived before the connection closed are still
	// delivered, with ctx already cancelled.
	OnMessage func(ctx context.Context, c *wsconn.Conn, m wsconn.Message) error
	// OnPong is called after each heartbeat ping is answered, with the
	// round-trip time. It sees only the answers to the heartbeat's pings;
	// other pongs (unsolicited ones, or answers to the callbacks' own
	// Conn.Ping) can be observed with DialOptions.OnPong or
	// AcceptOptions.OnPong, on the connection's reader goroutine.
	OnPong func(rtt time.Duration)
	// OnPing is called with the payload of each ping the peer sends, in
	// order, after wsconn has answered it with a pong: it observes the
	// pings, it does not answer them. It sees the pings of connections
	// opened by Run and ServeRequest, not of connections passed to Serve.
	//
	// The reader hands each ping over without waiting, into a queue of
	// PingQueueSize pings per connection: while OnPing or another callback
	// runs, at most that many pings wait, and further ones are dropped
	// (they have been answered all the same). Pings that arrived before the
	// connection closed are still delivered, as messages are.
	OnPing func(payload []byte)
	// OnError is called with what went wrong: a failed dial, a connection
	// lost without a closing handshake (a *wsconn.ConnectionClosedError
	// with 1006), a peer that did not answer a ping in time
	// (heartbeat.ErrTooSlow), or a callback's error or panic. It is not
	// called for a normal close, for ErrStop, or when ctx ends.
	OnError func(err error)
	// OnClose is called once for each connection, after it has closed,
	// with the final close code and reason. After a lost connection the
	// code is 1006.
	OnClose func(code wsconn.StatusCode, reason string)

	// PingInterval is the pause between heartbeat pings; zero means no
	// heartbeat.
	PingInterval time.Duration
	// PingTimeout is how long a ping may wait for its pong before the
	// connection is dropped as dead. It must be less than PingInterval, as
	// websocket-client requires. Zero means PingInterval/2.
	PingTimeout time.Duration

	// DialOptions configure Run's dials (overriding Reconnect.DialOptions).
	// Run does not modify them: with OnPing set, it dials with a copy whose
	// OnPing calls DialOptions.OnPing, if set, and then queues the ping for
	// App.OnPing.
	// A Reconnect.Dial must pass on the options it is given for OnPing to
	// see any ping.
	DialOptions *wsconn.DialOptions
	// Reconnect, if not nil, makes Run reconnect after the connection is
	// lost, closed by the peer, or dropped by the heartbeat, as
	// reconnect.Run does with these options. A callback's error or panic
	// is never retried. Nil means a single connection.
	Reconnect *reconnect.Options
}

// Run dials url and runs the callbacks on the connection until it closes,
// a callback returns ErrStop or an error, or ctx ends; with Reconnect set,
// it dials again after a connection ends other than by ErrStop, a callback's
// failure or ctx (see reconnect.Run for the waits and limits).
//
// Run returns nil when the connection ended normally: closed by either side,
// lost, or stopped by ErrStop (with Reconnect: only by ErrStop). It returns
// ctx.Err() when ctx ends, the heartbeat's error when the peer stopped
// answering pings (without Reconnect), and a callback's error or
// *nursery.PanicError as it is. Invalid settings and failed dials (without
// Reconnect; with it, permanent ones or the last) are returned too.
func (a *App) Run(ctx context.Context, url string) error {
	if err := a.check(); err != nil {
		return err
	}
	if a.Reconnect == nil {
		q := a.newPingQueue()
		c, err := wsconn.Dial(ctx, url, q.dialOptions(a.DialOptions))
		if err != nil {
			if ctx.Err() == nil {
				if perr := a.reportError(err); perr != nil {
					return perr
				}
			}
			return err
		}
		_, err = a.serve(ctx, c, q)
		if errors.Is(err, wsconn.ErrConnectionClosed) {
			return nil
		}
		return err
	}

	ro := *a.Reconnect
	if a.DialOptions != nil {
		ro.DialOptions = a.DialOptions
	}
	dial := ro.Dial
	if dial == nil {
		dial = wsconn.Dial
	}
	// final is a callback's failure, which ends Run as it is: it is marked
	// Permanent only on its way through reconnect.Run.
	var final error
	// reconnect.Run runs each connection it dials before it dials again,
	// so the last dial's connection and ping queue are the session's.
	var dialed *wsconn.Conn
	var dialedPings *pingQueue
	ro.Dial = func(ctx context.Context, url string, opts *wsconn.DialOptions) (*wsconn.Conn, error) {
		q := a.newPingQueue()
		c, err := dial(ctx, url, q.dialOptions(opts))
		if err != nil && ctx.Err() == nil {
			if perr := a.reportError(err); perr != nil {
				final = perr
				return nil, reconnect.Permanent(perr)
			}
		}
		dialed, dialedPings = c, q
		return c, err
	}
	err := reconnect.Run(ctx, url, &ro, func(ctx context.Context, c *wsconn.Conn) error {
		var q *pingQueue
		if c == dialed {
			q = dialedPings
		}
		callbackFailed, err := a.serve(ctx, c, q)
		if callbackFailed {
			final = err
			return reconnect.Permanent(err)
		}
		return err // nil after ErrStop; otherwise for reconnect.Run to judge
	})
	if final != nil {
		return final
	}
	return err
}

// Serve runs the callbacks on c, an open connection of either side (in a
// wsconn.Handler, pass the handler's ctx), in c's scope (wsconn.Conn.Scope),
// and so closes c by wsconn's scoping rule when done: 1000 after ErrStop,
// 1001 (going away) when ctx ends, 1011 after a failure, nothing new when
// c has already closed.
// OnClose is called last, once c has closed.
//
// OnPing sees no pings on a connection passed to Serve: the hook that
// feeds it is installed when the connection opens, by Run or ServeRequest.
//
// Serve returns nil when the connection ended normally (closed by either
// side, lost, or ErrStop), ctx.Err() when ctx ended, and otherwise the
// heartbeat's or the callback's error.
func (a *App) Serve(ctx context.Context, c *wsconn.Conn) error {
	return a.serveConn(ctx, c, nil)
}

// ServeRequest accepts r, as r.Accept(ctx, opts) does, and serves the
// connection as Serve does: the way to run an App in a wsconn.Handler, and
// the one that lets OnPing see the client's pings. opts is not modified;
// its OnPing, if set, is called before the App's.
func (a *App) ServeRequest(ctx context.Context, r *wsconn.Request, opts *wsconn.AcceptOptions) error {
	q := a.newPingQueue()
	var o wsconn.AcceptOptions
	if opts != nil {
		o = *opts
	}
	if q != nil {
		o.OnPing = q.hook(o.OnPing)
	}
	c, err := r.Accept(ctx, &o)
	if err != nil {
		return err
	}
	return a.serveConn(ctx, c, q)
}

// serveConn is Serve with the connection's ping queue (nil: none).
func (a *App) serveConn(ctx context.Context, c *wsconn.Conn, q *pingQueue) error {
	if err := a.check(); err != nil {
		return c.Scope(ctx, func(context.Context) error { return err }) // closes with 1011
	}
	if a.OnPing == nil {
		q = nil
	}
	_, err := a.serve(ctx, c, q)
	if errors.Is(err, wsconn.ErrConnectionClosed) {
		return nil
	}
	return err
}

// pingQueue carries one connection's pings from its reader goroutine to
// the session. A nil *pingQueue is no queue.
type pingQueue struct {
	pings chan []byte
}

// newPingQueue returns a queue if OnPing is set, and nil otherwise.
func (a *App) newPingQueue() *pingQueue {
	if a.OnPing == nil {
		return nil
	}
	return &pingQueue{pings: make(chan []byte, PingQueueSize)}
}

// hook returns an OnPing hook for wsconn that calls next, if not nil, then
// queues the payload without waiting, dropping it if the queue is full.
// (next first, so that what it did happened before OnPing hears of it.)
func (q *pingQueue) hook(next func([]byte)) func([]byte) {
	return func(payload []byte) {
		p := slices.Clone(payload) // next may keep or change its slice
		if next != nil {
			next(payload)
		}
		select {
		case q.pings <- p:
		default:
		}
	}
}

// dialOptions returns opts with the hook installed, as a copy; opts itself
// if q is nil.
func (q *pingQueue) dialOptions(opts *wsconn.DialOptions) *wsconn.DialOptions {
	if q == nil {
		return opts
	}
	var o wsconn.DialOptions
	if opts != nil {
		o = *opts
	}
	o.OnPing = q.hook(o.OnPing)
	return &o
}

func (a *App) check() error {
	switch {
	case a.PingInterval < 0:
		return fmt.Errorf("app: PingInterval must not be negative, not %v", a.PingInterval)
	case a.PingTimeout < 0:
		return fmt.Errorf("app: PingTimeout must not be negative, not %v", a.PingTimeout)
	case a.PingInterval == 0 && a.PingTimeout > 0:
		return errors.New("app: PingTimeout is set but PingInterval is not")
	case a.PingInterval > 0 && a.PingTimeout >= a.PingInterval:
		return fmt.Errorf("app: PingInterval (%v) must be greater than PingTimeout (%v)", a.PingInterval, a.PingTimeout)
	}
	return nil
}

// serve runs one connection in its scope (wsconn.Conn.Scope: the one
// scoping rule, which also picks the close code). It returns nil after
// ErrStop, the *wsconn.ConnectionClosedError when the connection closed,
// ctx.Err() when ctx ended, or the failure; callbackFailed says that a
// callback failed or panicked (as opposed to the heartbeat).
// q, if not nil, holds c's pings for OnPing.
func (a *App) serve(ctx context.Context, c *wsconn.Conn, q *pingQueue) (callbackFailed bool, err error) {
	s := &session{app: a}
	// stopped: a callback returned ErrStop; ctxEnded: ctx had ended when
	// the session did (judged before the scope closes c, which may cancel
	// ctx: a handler's, or a reconnect session's).
	stopped, ctxEnded := false, false
	err = c.Scope(ctx, func(scoped context.Context) error {
		err := s.run(ctx, scoped, c, q)
		ctxEnded = ctx.Err() != nil
		if errors.Is(err, ErrStop) {
			stopped = true
			return nil // closes with 1000
		}
		return err
	})

	// What ended the connection decides whether it was a failure to report
	// to OnError and return.
	var ce *wsconn.ConnectionClosedError
	failed, report := err != nil, err != nil
	switch {
	case stopped:
		err, failed, report = nil, false, false // whatever closing returned
	case errors.As(err, &ce), ctxEnded && errors.As(context.Cause(ctx), &ce):
		// Closed: by the peer, by a callback, or lost (1006, reported).
		failed = false
	case ctxEnded:
		err, failed, report = ctx.Err(), false, false
	}
	r, _ := c.CloseReason()
	if ce != nil {
		err = &wsconn.ConnectionClosedError{Reason: r} // the final reason
		report = r.Code == wsconn.StatusAbnormalClosure
	}
	callbackFailed = failed && !errors.Is(err, heartbeat.ErrTooSlow)
	if report {
		if perr := s.callError(err); perr != nil && !failed {
			err, failed, callbackFailed = perr, true, true
		}
	}
	if a.OnClose != nil {
		if perr := s.call(func() error { a.OnClose(r.Code, r.Reason); return nil }); perr != nil && !failed {
			err, callbackFailed = perr, true
		}
	}
	return callbackFailed, err
}

// run runs the callbacks, the heartbeat and the ping delivery in a nursery
// under ctx, until one fails or the reader sees the connection closed.
// scoped is the connection's scope: it also ends when c closes.
func (s *session) run(ctx, scoped context.Context, c *wsconn.Conn, q *pingQueue) error {
	a := s.app
	var release func() // of connCtx, once every task has returned
	defer func() {
		if release != nil {
			release()
		}
	}()
	return nursery.Run(ctx, func(nctx context.Context, n *nursery.Nursery) error {
		// Callbacks and the heartbeat get connCtx, which also ends, with
		// the *wsconn.ConnectionClosedError as cause, when the connection
		// closes. (The nursery itself does not end then: a callback that
		// fails on a message delivered after the close still counts.)
		connCtx, closed := context.WithCancelCause(nctx)
		stopClosed := context.AfterFunc(scoped, func() { closed(context.Cause(scoped)) })
		release = func() { stopClosed(); closed(nil) }
		// Receive gets readCtx, which does not end when ctx ends because the
		// connection closed (a handler's ctx does), so that the messages
		// that arrived before the close are still delivered; Receive fails
		// once they are.
		readCtx, stopReading := context.WithCancelCause(context.WithoutCancel(nctx))
		defer stopReading(nil)
		stop := context.AfterFunc(nctx, func() {
			if cause := context.Cause(nctx); !errors.Is(cause, wsconn.ErrConnectionClosed) {
				stopReading(cause)
			}
		})
		defer stop()

		if a.PingInterval > 0 {
			n.Go(func(context.Context) error { return s.heartbeat(connCtx, c) })
		}
		if q != nil {
			n.Go(func(context.Context) error { return s.deliverPings(connCtx, q) })
		}
		// A callback that gives up because connCtx ended with the
		// connection has not failed: the connection has closed.
		closedOr := func(err error) error {
			if err != nil && connCtx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				if cause := context.Cause(connCtx); errors.Is(cause, wsconn.ErrConnectionClosed) {
					return cause
				}
			}
			return err
		}
		if a.OnOpen != nil {
			if err := s.call(func() error { return a.OnOpen(connCtx, c) }); err != nil {
				return closedOr(err)
			}
		}
		for {
			m, err := c.Receive(readCtx)
			if err != nil {
				if readCtx.Err() != nil {
					return nctx.Err()
				}
				return err
			}
			if a.OnMessage != nil {
				if err := s.call(func() error { return a.OnMessage(connCtx, c, m) }); err != nil {
					return closedOr(err)
				}
			}
		}
	})
}

// session is one connection's state.
type session struct {
	app     *App
	mu      sync.Mutex // callbacks run one at a time
	stopped bool       // a callback has returned an error or panicked; guarded by mu
}

// call runs a callback under the session's lock, turning a panic into a
// *nursery.PanicError.
func (s *session) call(f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.callLocked(f)
}

// callUnlessStopped is call, except that it does nothing once a callback
// has failed or returned ErrStop: for OnPing, which runs beside the reader
// and could otherwise be called after such a callback and before the
// nursery has been cancelled.
func (s *session) callUnlessStopped(f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	return s.callLocked(f)
}

func (s *session) callLocked(f func() error) error {
	err := recovered(f)
	if err != nil {
		s.stopped = true
	}
	return err
}

func (s *session) callError(err error) error {
	if s.app.OnError == nil {
		return nil
	}
	return s.call(func() error { s.app.OnError(err); return nil })
}

// reportError calls OnError outside a session (a failed dial).
func (a *App) reportError(err error) error {
	if a.OnError == nil {
		return nil
	}
	return recovered(func() error { a.OnError(err); return nil })
}

func recovered(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &nursery.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return f()
}

// deliverPings calls OnPing with each ping from q until ctx ends. If it
// ended because the connection closed, the reader has queued every ping
// that came before the close (it handles frames in order), and those are
// delivered too; otherwise (a failure, or Serve's ctx) the rest are dropped.
func (s *session) deliverPings(ctx context.Context, q *pingQueue) error {
	for {
		var p []byte
		if ctx.Err() == nil {
			select {
			case p = <-q.pings:
			case <-ctx.Done():
				continue
			}
		} else {
			if !errors.Is(context.Cause(ctx), wsconn.ErrConnectionClosed) {
				return nil
			}
			select {
			case p = <-q.pings:
			default:
				return nil
			}
		}
		if err := s.callUnlessStopped(func() error { s.app.OnPing(p); return nil }); err != nil {
			return err
		}
	}
}

// heartbeat pings until the peer is too slow, a callback fails, or ctx
// ends. A closed connection is left for the reader to report, after it has
// delivered what was queued.
func (s *session) heartbeat(ctx context.Context, c *wsconn.Conn) error {
	timeout := s.app.PingTimeout
	if timeout == 0 {
		timeout = s.app.PingInterval / 2
	}
	var cbErr error
	hctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	err := heartbeat.Run(hctx, c, &heartbeat.Options{
		Timeout:  timeout,
		Interval: s.app.PingInterval,
		OnRTT: func(rtt time.Duration) {
			if s.app.OnPong == nil || cbErr != nil {
				return
			}
			if cbErr = s.call(func() error { s.app.OnPong(rtt); return nil }); cbErr != nil {
				stop(cbErr)
			}
		},
	})
	switch {
	case cbErr != nil:
		return cbErr
	case ctx.Err() != nil, errors.Is(err, wsconn.ErrConnectionClosed):
		return nil
	}
	return err
}
