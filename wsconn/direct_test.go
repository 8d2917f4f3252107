package wsconn_test

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/wsconn"
)

// These tests run over loopback TCP, where a waiting Receive reads the
// next message itself (direct.go); the contract is the one the queue keeps.

// numberedMsg is message i: its number in 4 bytes, padded to size.
func numberedMsg(i, size int) []byte {
	b := make([]byte, max(size, 4))
	binary.BigEndian.PutUint32(b, uint32(i))
	return b
}

// Pings are answered while a Receive waits, and while nobody receives.
func TestTCPPingsAnsweredAroundReceive(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	pongs := make(chan struct{}, 1)
	step := make(chan string)
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.SetPongHandler(func(string) error { pongs <- struct{}{}; return nil })
		go func() {
			for { // runs the pong handler; ends with the connection
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
		for s := range step {
			if s == "ping" {
				ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(5*time.Second))
			} else {
				ws.WriteMessage(websocket.BinaryMessage, []byte(s))
			}
		}
	})
	c := dial(t, url, nil)
	defer close(step)
	waitPong := func(what string) {
		t.Helper()
		select {
		case <-pongs:
		case <-time.After(5 * time.Second):
			t.Fatalf("no pong %s", what)
		}
	}
	step <- "first"
	if m, err := c.Receive(ctx); err != nil || string(m.Data) != "first" {
		t.Fatalf("Receive = %q, %v", m.Data, err)
	}
	got := make(chan string, 1)
	go func() {
		m, err := c.Receive(ctx)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(m.Data)
	}()
	time.Sleep(20 * time.Millisecond) // let Receive wait; the pong must come either way
	step <- "ping"
	waitPong("while Receive waits")
	step <- "second"
	if s := <-got; s != "second" {
		t.Fatalf("Receive = %q, want second", s)
	}
	// Nobody receives now.
	step <- "ping"
	waitPong("while nobody receives")
	step <- "third"
	if m, err := c.Receive(ctx); err != nil || string(m.Data) != "third" {
		t.Fatalf("Receive = %q, %v", m.Data, err)
	}
}

// A Receive cancelled while half a message has arrived loses nothing: the
// next Receive returns the whole message.
func TestTCPReceiveCancelledMidMessage(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	rest := make(chan struct{})
	payload := numberedMsg(7, 1000)
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		// An unmasked binary frame (server to client), sent in two parts.
		frame := []byte{0x82, 126, byte(len(payload) >> 8), byte(len(payload))}
		frame = append(frame, payload...)
		ws.WriteMessage(websocket.BinaryMessage, []byte("whole"))
		ws.NetConn().Write(frame[:500])
		<-rest
		ws.NetConn().Write(frame[500:])
		ws.ReadMessage() // until the client goes
	})
	c := dial(t, url, nil)
	if m, err := c.Receive(ctx); err != nil || string(m.Data) != "whole" {
		t.Fatalf("Receive = %q, %v", m.Data, err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.Receive(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive with half a message = %v, want DeadlineExceeded", err)
	}
	close(rest)
	m, err := c.Receive(ctx)
	if err != nil || !slices.Equal(m.Data, payload) || m.Type != wsconn.Binary {
		t.Fatalf("Receive = %d bytes (%v), %v; want the whole message", len(m.Data), m.Type, err)
	}
}

// Concurrent Receive calls each get distinct messages, none lost, each
// caller's in the order sent.
func TestTCPConcurrentReceivers(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	const n, receivers = 400, 4
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		for i := range n {
			size := 16
			if i%50 == 0 {
				size = 100 << 10 // now and then one too long for a direct read
			}
			if err := ws.WriteMessage(websocket.BinaryMessage, numberedMsg(i, size)); err != nil {
				return
			}
		}
		ws.ReadMessage()
	})
	c := dial(t, url, nil)
	var (
		mu   sync.Mutex
		seen = map[int]bool{}
		wg   sync.WaitGroup
	)
	errs := make(chan error, receivers)
	for range receivers {
		wg.Go(func() {
			last := -1
			for {
				mu.Lock()
				done := len(seen) == n
				mu.Unlock()
				if done {
					return
				}
				rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				m, err := c.Receive(rctx)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					continue // the others took the rest
				}
				if err != nil {
					errs <- err
					return
				}
				i := int(binary.BigEndian.Uint32(m.Data))
				if i <= last {
					errs <- errors.New("a receiver got messages out of order")
					return
				}
				last = i
				mu.Lock()
				if seen[i] {
					mu.Unlock()
					errs <- errors.New("a message was received twice")
					return
				}
				seen[i] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A local Close fails a Receive that is waiting at once, as it fails one
// waiting on the queue, without waiting for the peer's answer.
func TestTCPCloseFailsWaitingReceive(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	release := make(chan struct{})
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.WriteMessage(websocket.BinaryMessage, []byte("hello"))
		<-release // reads nothing, so answers no Close
	})
	defer close(release)
	c := dial(t, url, &wsconn.DialOptions{DisconnectTimeout: 10 * time.Second})
	if _, err := c.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Receive(ctx); errc <- err }()
	time.Sleep(20 * time.Millisecond) // let Receive wait; it must fail either way
	closed := make(chan error, 1)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	go func() { closed <- c.Close(cctx, wsconn.StatusNormalClosure, "") }()
	select {
	case err := <-errc:
		wantClosed(t, err, wsconn.StatusNormalClosure, "")
	case <-time.After(2 * time.Second):
		t.Fatal("Receive still waiting 2 s after Close")
	}
	cancel()
	<-closed
}
