package wsconn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gorilla/websocket"
)

type pendingPing struct {
	payload string
	pong    chan struct{}
}

// Ping sends a ping and waits until its pong arrives. A nil payload is
// replaced by 4 random bytes; a payload longer than 125 bytes is an error.
// Only one ping per payload may wait at a time: another gets ErrPingInFlight
// and nothing is sent.
//
// A pong answers its own ping and every ping sent before it; pongs that
// match no ping are ignored. If ctx ends first, the ping stops waiting and
// its payload is free again (a late pong is harmless); if ctx's deadline
// passed, the connection remembers that the peer did not answer, so that
// Close does not wait for it. If the connection closes, Ping returns a
// *ConnectionClosedError at once.
func (c *Conn) Ping(ctx context.Context, payload []byte) error {
	if len(payload) > maxControlPayload {
		return fmt.Errorf("failed to send ping: payload of %d bytes exceeds %d", len(payload), maxControlPayload)
	}
	p, err := c.registerPing(payload)
	if err != nil {
		return err
	}
	var start time.Time
	if c.cfg.log != nil {
		start = time.Now()
	}
	if err := c.writeControl(ctx, websocket.PingMessage, []byte(p.payload), "ping"); err != nil {
		c.deregisterPing(p)
		if errors.Is(err, context.DeadlineExceeded) {
			c.peerDead.Store(true) // it does not even read
		}
		return err
	}
	if c.cfg.log != nil {
		c.traceData("websocket ping sent", 0, []byte(p.payload))
	}
	select {
	case <-p.pong:
	case <-c.closing:
		if !answered(p) { // the pong wins when it came before the close
			c.deregisterPing(p)
			return c.closedErr()
		}
	case <-ctx.Done():
		if !answered(p) {
			c.deregisterPing(p)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				c.peerDead.Store(true)
			}
			return fmt.Errorf("failed to ping: %w", ctx.Err())
		}
	}
	if c.cfg.log != nil {
		c.trace("websocket ping answered", "rtt", time.Since(start))
	}
	return nil
}

// answered reports whether p's pong has arrived.
func answered(p *pendingPing) bool {
	select {
	case <-p.pong:
		return true
	default:
		return false
	}
}

func (c *Conn) registerPing(payload []byte) (*pendingPing, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen {
		return nil, &ConnectionClosedError{Reason: c.reason}
	}
	var s string
	if payload == nil {
		var b [4]byte
		for {
			binary.LittleEndian.PutUint32(b[:], rand.Uint32())
			s = string(b[:])
			if c.findPing(s) < 0 {
				break
			}
		}
	} else {
		s = string(payload)
		if c.findPing(s) >= 0 {
			return nil, ErrPingInFlight
		}
	}
	p := &pendingPing{payload: s, pong: make(chan struct{})}
	c.pings = append(c.pings, p)
	return p, nil
}

func (c *Conn) findPing(payload string) int {
	for i, p := range c.pings {
		if p.payload == payload {
			return i
		}
	}
	return -1
}

func (c *Conn) deregisterPing(p *pendingPing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, q := range c.pings {
		if q == p {
			c.pings = append(c.pings[:i], c.pings[i+1:]...)
			return
		}
	}
}

// handlePong runs inside the reader: resolve the matching ping and every
// ping sent before it.
func (c *Conn) handlePong(payload string) error {
	c.peerDead.Store(false)
	if c.cfg.log != nil {
		c.traceData("websocket pong received", 0, []byte(payload))
	}
	if c.cfg.onPong != nil {
		c.cfg.onPong([]byte(payload))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.findPing(payload)
	if i < 0 {
		return nil
	}
	for _, p := range c.pings[:i+1] {
		close(p.pong)
	}
	n := copy(c.pings, c.pings[i+1:])
	clear(c.pings[n:])
	c.pings = c.pings[:n]
	return nil
}

// handlePing runs inside the reader: answer with the same payload. After we
// sent Close, a ping is ignored rather than treated as an error.
func (c *Conn) handlePing(payload string) error {
	select {
	case <-c.closing:
		return nil
	default:
	}
	if c.cfg.log != nil {
		c.traceData("websocket ping received", 0, []byte(payload))
	}
	err := c.ws.WriteControl(websocket.PongMessage, []byte(payload), time.Now().Add(min(c.cfg.disconnectTimeout, 5*time.Second)))
	if err == nil && c.cfg.log != nil {
		c.traceData("websocket pong sent", 0, []byte(payload))
	}
	if c.cfg.onPing != nil {
		c.cfg.onPing([]byte(payload))
	}
	return nil
}
