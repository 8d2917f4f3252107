package wsconn

import (
	"context"
	"encoding/binary"
	"fmt"
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
	if !c.startClosing(CloseReason{Code: code, Reason: reason}, true) {
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
	c.trace("websocket closing", "code", int(code), "reason", reason)

	deadline := c.controlDeadline(ctx)
	dead := c.peerDead.Load()
	if dead {
		if d := time.Now().Add(deadPeerWait); d.Before(deadline) {
			deadline = d
		}
	}
	err := c.ws.WriteControl(websocket.CloseMessage, formatClose(code, reason), deadline)
	if dead || (err != nil && err != websocket.ErrCloseSent) {
		c.netConn.Close()
		<-c.done
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
		c.netConn.Close()
		<-c.done
		return fmt.Errorf("failed to close: %w", ctx.Err())
	case <-timer.C:
		c.netConn.Close()
		<-c.done
		return fmt.Errorf("failed to close: %w", ErrDisconnectionTimeout)
	}
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
