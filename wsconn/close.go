package wsconn

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// maxCloseReason is the room for a reason in a Close frame: 125 bytes of
// control payload less the 2-byte code.
const maxCloseReason = 123

// deadPeerWait bounds the Close frame write when the peer is known not to
// answer pings: Close then drops TCP without waiting for its echo.
const deadPeerWait = time.Second

// The whole close path lives here: the connection's state, the one
// function that changes it, and every way of closing (Close, the peer's
// Close frame, failing on bad input, aborting, the reader's end).

// connState is where a connection is on its way to closed. It only moves
// forward: open → closing → peer closed → closed, skipping steps as needed.
type connState uint8

const (
	// stateOpen: no Close frame sent or received, nothing failed.
	stateOpen connState = iota
	// stateClosing: closing started on this side (Close, a failure, a lost
	// connection); the peer's Close frame has not arrived.
	stateClosing
	// statePeerClosed: the peer's Close frame arrived, first or as the
	// answer to ours; the reason it carried is final.
	statePeerClosed
	// stateClosed: the reader stopped and TCP is closed.
	stateClosed
)

func (s connState) String() string {
	switch s {
	case stateOpen:
		return "open"
	case stateClosing:
		return "closing"
	case statePeerClosed:
		return "peer closed"
	case stateClosed:
		return "closed"
	}
	return "connState(" + strconv.Itoa(int(s)) + ")"
}

// closeEvent is what moves a connection along its close path.
type closeEvent uint8

const (
	// evClose: a local Close or an abort. Starts closing with the given
	// reason unless it has started, and discards the queued messages.
	evClose closeEvent = iota
	// evCloseReceiving: a local CloseReceiving. As evClose, but the queue
	// is kept: what arrives before the peer's Close is still delivered.
	evCloseReceiving
	// evFail: bad input, a framing error or a lost connection. Starts
	// closing with the given reason unless it has started.
	evFail
	// evPeerClose: the peer's Close frame, whose reason is recorded: it is
	// the final word whether it starts closing or answers our Close.
	evPeerClose
	// evFinish: the reader stopped and TCP is closed.
	evFinish
)

// transition applies ev, with reason where ev records one, in one critical
// section, closes the channels waiters select on (closing, dropQueue, done)
// as the state passes them, and returns the state before. Every change of
// state goes through here, so that each decision ("did this start
// closing?", "is this Close frame the peer's answer?") is made atomically
// with the change it depends on.
func (c *Conn) transition(ev closeEvent, reason CloseReason) connState {
	c.mu.Lock()
	defer c.mu.Unlock()
	from := c.state
	to := from
	switch ev {
	case evClose, evCloseReceiving, evFail:
		if from == stateOpen {
			to, c.reason = stateClosing, reason
		}
		if ev == evClose && !c.discard {
			c.discard = true
			close(c.dropQueue)
			c.direct.dropped() // a receiver reading directly fails at once too
		}
	case evPeerClose:
		if from == stateOpen || from == stateClosing {
			to, c.reason = statePeerClosed, reason
		}
	case evFinish:
		if from == stateOpen { // not reached: the reader records why it stops
			c.reason = CloseReason{Code: StatusAbnormalClosure}
		}
		to = stateClosed
	}
	if from == stateOpen && to != stateOpen {
		close(c.closing)
	}
	if to == stateClosed && from != stateClosed {
		close(c.done)
	}
	c.state = to
	return from
}

// stateNow returns the current state.
func (c *Conn) stateNow() connState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Close runs the closing handshake: it sends a Close frame with code and
// reason, waits for the peer's Close frame, then closes the TCP connection.
// The wait is bounded by ctx and the disconnect timeout; when that runs out
// Close drops the connection and returns ErrDisconnectionTimeout (or ctx's
// error). When the peer is known dead (a ping's deadline passed with no pong
// since) Close sends the frame and drops the connection without waiting.
//
// CloseReason is set when Close starts and becomes what the peer echoed.
// Codes 1005, 1006 and 1015 are sent as 1000; codes that may not be sent
// (e.g. 999, 1004, 2000) are an error; reason is cut to 123 bytes at a UTF-8
// boundary. Close is idempotent: a later call waits for the first to finish
// (bounded by its ctx) and returns nil.
func (c *Conn) Close(ctx context.Context, code StatusCode, reason string) error {
	return c.closeHandshake(ctx, code, reason, evClose)
}

// CloseReceiving is [Conn.Close] for when the peer's last messages matter
// (a client that has just sent requests, say): it runs the same closing
// handshake, but the messages already queued and those that arrive before
// the peer's Close frame are kept for Receive instead of being discarded.
// Receive returns them in order, then the *ConnectionClosedError.
//
// Something must go on calling Receive meanwhile: while the queue is full
// the reader waits, the peer's Close frame goes unread, and the handshake
// ends by ctx or the disconnect timeout instead. A Close called during
// CloseReceiving discards the queue from then on.
func (c *Conn) CloseReceiving(ctx context.Context, code StatusCode, reason string) error {
	return c.closeHandshake(ctx, code, reason, evCloseReceiving)
}

// closeHandshake is Close, with ev saying whether the queue is discarded.
func (c *Conn) closeHandshake(ctx context.Context, code StatusCode, reason string, ev closeEvent) error {
	if code == StatusNoStatusReceived || code == StatusAbnormalClosure || code == StatusTLSHandshake {
		code = StatusNormalClosure
	}
	if !code.sendable() {
		return fmt.Errorf("failed to close: status code %d may not be sent", int(code))
	}
	if !utf8.ValidString(reason) {
		return fmt.Errorf("failed to close: reason is not valid UTF-8")
	}
	reason = truncateReason(reason)
	if c.transition(ev, CloseReason{Code: code, Reason: reason}) != stateOpen {
		select {
		case <-c.done:
			return nil
		case <-ctx.Done():
			if c.isDone() {
				return nil
			}
			return fmt.Errorf("failed to close: %w", ctx.Err())
		}
	}
	deadline := c.controlDeadline(ctx)
	dead := c.peerDead.Load()
	if dead {
		if d := time.Now().Add(deadPeerWait); d.Before(deadline) {
			deadline = d
		}
	}
	err := c.writeClose(code, reason, deadline)
	if dead || (err != nil && err != websocket.ErrCloseSent) {
		c.drop()
		return nil
	}
	timer := time.NewTimer(c.cfg.disconnectTimeout)
	defer timer.Stop()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		if c.isDone() { // the handshake finished, which cancelled ctx
			return nil
		}
		c.drop()
		return fmt.Errorf("failed to close: %w", ctx.Err())
	case <-timer.C:
		c.drop()
		return fmt.Errorf("failed to close: %w", ErrDisconnectionTimeout)
	}
}

// drop ends a closing handshake that will not finish: it closes TCP,
// discards the queue (a reader waiting to queue a message after
// CloseReceiving would otherwise never stop) and waits for the reader.
func (c *Conn) drop() {
	c.netConn.Close()
	c.transition(evClose, CloseReason{})
	<-c.done
}

// abort fails the connection without a closing handshake: the TCP
// connection is closed and reason recorded unless closing had started.
func (c *Conn) abort(reason CloseReason) {
	if c.transition(evClose, reason) == stateOpen {
		c.trace("websocket connection aborted", "reason", reason.String())
	}
	c.netConn.Close()
}

// fail ends the connection for bad input from the peer (RFC 6455 §7.1.7):
// send Close with code where writes are still possible, record the code;
// the reader then closes TCP.
func (c *Conn) fail(code StatusCode, reason string) {
	if c.transition(evFail, CloseReason{Code: code, Reason: reason}) != stateOpen {
		return
	}
	c.writeClose(code, reason, time.Now().Add(min(c.cfg.disconnectTimeout, time.Second)))
}

// handleClose runs inside the reader when the peer's Close frame arrives.
// The frame is recorded in the same step that decides whether it starts
// the closing handshake (we echo it) or answers ours, so a local Close
// racing with it either comes first and is answered, or finds the peer's
// code already recorded and waits.
func (c *Conn) handleClose(code int, text string) error {
	echo := c.transition(evPeerClose, CloseReason{Code: StatusCode(code), Reason: text}) == stateOpen
	c.trace("websocket close received", "code", code, "reason", text)
	if echo {
		wire := StatusCode(code)
		if !wire.sendable() {
			wire, text = StatusNormalClosure, ""
		}
		c.writeClose(wire, text, time.Now().Add(min(c.cfg.disconnectTimeout, time.Second)))
	}
	return nil
}

// finish runs when the reader stops: close TCP (a client first gives the
// server a moment to close it, as RFC 6455 §7.1.1 asks), release Receive
// callers, pings and watchers.
func (c *Conn) finish() {
	// Only the reader moves the state on from here, so it stays as read.
	if c.client && c.stateNow() == statePeerClosed {
		c.netConn.SetReadDeadline(time.Now().Add(min(c.cfg.disconnectTimeout, finWait)))
		var b [64]byte
		for {
			if _, err := c.netConn.Read(b[:]); err != nil {
				break
			}
		}
	}
	c.netConn.Close()
	c.watch.release()
	close(c.queue)
	c.transition(evFinish, CloseReason{})
	c.mu.Lock()
	hooks := c.onDone // afterDone appends no more once done is closed
	c.onDone = nil
	c.mu.Unlock()
	r, _ := c.CloseReason()
	c.trace("websocket connection closed", "code", int(r.Code), "reason", r.Reason)
	for _, f := range hooks {
		f()
	}
}

// writeClose sends a Close frame (once: gorilla refuses a second one with
// ErrCloseSent), and traces it.
func (c *Conn) writeClose(code StatusCode, reason string, deadline time.Time) error {
	err := c.ws.WriteControl(websocket.CloseMessage, formatClose(code, reason), deadline)
	if err == nil {
		c.trace("websocket close sent", "code", int(code), "reason", reason)
	}
	return err
}

// truncateReason cuts s to maxCloseReason bytes without splitting a rune.
func truncateReason(s string) string {
	if len(s) <= maxCloseReason {
		return s
	}
	s = s[:maxCloseReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// formatClose builds a Close frame payload.
func formatClose(code StatusCode, reason string) []byte {
	reason = truncateReason(reason)
	b := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	copy(b[2:], reason)
	return b
}
