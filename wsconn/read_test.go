package wsconn_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/wsconn"
)

// A cancelled Receive loses nothing and leaves the connection usable.
func TestReceiveCancelLosesNoMessage(t *testing.T) {
	c := dial(t, serve(t, nil, echo, nil), nil)
	ctx := ctxTimeout(t, 10*time.Second)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Receive(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive(cancelled) = %v, want context.Canceled", err)
	}
	// A receive that is waiting when its ctx ends.
	wctx, wcancel := context.WithCancel(ctx)
	errc := make(chan error)
	go func() { _, err := c.Receive(wctx); errc <- err }()
	wcancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive = %v, want context.Canceled", err)
	}
	if err := c.SendText(ctx, "still here"); err != nil {
		t.Fatal(err)
	}
	m, err := c.Receive(ctx)
	if err != nil || string(m.Data) != "still here" || m.Type != wsconn.Text {
		t.Fatalf("Receive = %v %q %v", m.Type, m.Data, err)
	}
}

// Concurrent receivers each get distinct messages and together all of them.
func TestConcurrentReceiversGetDistinctMessages(t *testing.T) {
	const n = 200
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		for i := range n {
			if err := c.SendText(ctx, fmt.Sprint(i)); err != nil {
				return err
			}
		}
		<-ctx.Done()
		return nil
	}, nil)
	c := dial(t, url, nil)
	ctx := ctxTimeout(t, 10*time.Second)

	var mu sync.Mutex
	var got []string
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				mu.Lock()
				if len(got) >= n {
					mu.Unlock()
					return
				}
				mu.Unlock()
				rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				m, err := c.Receive(rctx)
				cancel()
				if err != nil {
					continue // timed out: the others may have taken the rest
				}
				mu.Lock()
				got = append(got, string(m.Data))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	if len(got) != n || len(slices.Compact(slices.Clone(got))) != n {
		t.Fatalf("received %d messages, %d distinct; want %d distinct", len(got), len(slices.Compact(got)), n)
	}
}

// After the peer closes, queued messages are still delivered, then the
// peer's reason.
func TestQueuedMessagesSurviveRemoteClose(t *testing.T) {
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		for _, s := range []string{"a", "b", "c"} {
			ws.WriteMessage(websocket.TextMessage, []byte(s))
		}
		ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"))
		ws.ReadMessage() // our echo
	})
	c := dial(t, url, &wsconn.DialOptions{MessageQueueSize: 3})
	ctx := ctxTimeout(t, 10*time.Second)
	<-c.Done()
	if r := closeReason(t, c); r.Code != 4001 || r.Reason != "bye" {
		t.Fatalf("CloseReason = %v", r)
	}
	for _, want := range []string{"a", "b", "c"} {
		m, err := c.Receive(ctx)
		if err != nil || string(m.Data) != want {
			t.Fatalf("Receive = %q, %v; want %q", m.Data, err, want)
		}
	}
	_, err := c.Receive(ctx)
	wantClosed(t, err, 4001, "bye")
}

// After the TCP connection is lost, queued messages are still delivered,
// then 1006.
func TestQueuedMessagesSurviveLostConnection(t *testing.T) {
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.WriteMessage(websocket.BinaryMessage, []byte{1})
		ws.WriteMessage(websocket.BinaryMessage, []byte{2})
		ws.NetConn().Close()
	})
	c := dial(t, url, &wsconn.DialOptions{MessageQueueSize: 2})
	ctx := ctxTimeout(t, 10*time.Second)
	<-c.Done()
	for _, want := range []byte{1, 2} {
		m, err := c.Receive(ctx)
		if err != nil || m.Type != wsconn.Binary || !slices.Equal(m.Data, []byte{want}) {
			t.Fatalf("Receive = %v %v, %v; want binary [%d]", m.Type, m.Data, err, want)
		}
	}
	_, err := c.Receive(ctx)
	wantClosed(t, err, wsconn.StatusAbnormalClosure, "")
}

// After a local Close, queued messages are discarded.
func TestLocalCloseDiscardsQueue(t *testing.T) {
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.WriteMessage(websocket.TextMessage, []byte("one"))
		ws.WriteMessage(websocket.TextMessage, []byte("two"))
		for {
			if _, _, err := ws.ReadMessage(); err != nil { // answers pings and our Close
				return
			}
		}
	})
	c := dial(t, url, &wsconn.DialOptions{MessageQueueSize: 2})
	ctx := ctxTimeout(t, 10*time.Second)
	// The pong comes after both messages on the wire, so once Ping returns
	// the reader has queued them.
	if err := c.Ping(ctx, []byte("sync")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx, wsconn.StatusNormalClosure, "done"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Receive(ctx)
	// The final reason is the peer's echo; gorilla's echo drops the reason.
	wantClosed(t, err, wsconn.StatusNormalClosure, "")
}

// The reader answers pings while the application is not receiving, as long
// as the queue has room.
func TestPingsAnsweredWithoutReceive(t *testing.T) {
	pongs := make(chan string, 1)
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.SetPongHandler(func(s string) error { pongs <- s; return nil })
		ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(5*time.Second))
		ws.ReadMessage()
	})
	dial(t, url, nil)
	select {
	case got := <-pongs:
		if got != "are you there" {
			t.Fatalf("pong payload %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pong")
	}
}

// Bad input from the peer fails the connection with the right code, sent
// on the wire and recorded locally.
func TestBadInputFailsConnection(t *testing.T) {
	const limit = 1000
	tests := []struct {
		name   string
		send   func(ws *websocket.Conn)
		code   wsconn.StatusCode
		reason string
	}{
		{"invalid UTF-8 text", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.TextMessage, []byte("ok \xff\xfe"))
		}, wsconn.StatusInvalidFramePayloadData, "invalid UTF-8 in text message"},
		{"message over the limit", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.BinaryMessage, make([]byte, limit+1))
		}, wsconn.StatusMessageTooBig, "message exceeds the limit of 1000 bytes"},
		{"fragmented message over the limit", func(ws *websocket.Conn) {
			w, _ := ws.NextWriter(websocket.BinaryMessage)
			for range limit + 1 {
				w.Write([]byte{0})
			}
			w.Close()
		}, wsconn.StatusMessageTooBig, "message exceeds the limit of 1000 bytes"},
		{"reserved bit set", func(ws *websocket.Conn) {
			ws.NetConn().Write([]byte{0x80 | 0x40 | 0x1, 1, 'x'}) // FIN, RSV1, text
		}, wsconn.StatusProtocolError, "*"},
		{"close frame with a 1-byte payload", func(ws *websocket.Conn) {
			ws.NetConn().Write([]byte{0x88, 1, 0x03})
		}, wsconn.StatusProtocolError, "close frame payload of 1 byte"},
		{"close reason not UTF-8", func(ws *websocket.Conn) {
			ws.NetConn().Write([]byte{0x88, 4, 0x0f, 0xa0, 0xff, 0xfe}) // 4000, "\xff\xfe"
		}, wsconn.StatusInvalidFramePayloadData, "close reason is not valid UTF-8"},
		{"reserved opcode", func(ws *websocket.Conn) {
			ws.NetConn().Write([]byte{0x80 | 0x3, 0})
		}, wsconn.StatusProtocolError, "*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan *websocket.CloseError, 1)
			url := rawPeer(t, nil, func(ws *websocket.Conn) {
				tt.send(ws)
				_, _, err := ws.ReadMessage()
				ce, _ := err.(*websocket.CloseError)
				got <- ce
			})
			c := dial(t, url, &wsconn.DialOptions{MaxMessageSize: limit})
			ctx := ctxTimeout(t, 10*time.Second)
			_, err := c.Receive(ctx)
			wantClosed(t, err, tt.code, tt.reason)
			<-c.Done()
			ce := <-got
			if ce == nil || ce.Code != int(tt.code) {
				t.Fatalf("peer saw close %v, want code %d", ce, tt.code)
			}
			if tt.code == wsconn.StatusMessageTooBig && !strings.Contains(ce.Text, "1000") {
				t.Fatalf("1009 reason %q does not name the limit", ce.Text)
			}
		})
	}
}

// A message of exactly MaxMessageSize bytes is accepted.
func TestMessageAtLimitAccepted(t *testing.T) {
	const limit = 4096
	c := dial(t, serve(t, nil, echo, &wsconn.ServerOptions{MaxMessageSize: limit}), &wsconn.DialOptions{MaxMessageSize: limit})
	ctx := ctxTimeout(t, 10*time.Second)
	payload := make([]byte, limit)
	for i := range payload {
		payload[i] = byte(i)
	}
	if err := c.SendBinary(ctx, payload); err != nil {
		t.Fatal(err)
	}
	m, err := c.Receive(ctx)
	if err != nil || !slices.Equal(m.Data, payload) {
		t.Fatalf("Receive: %d bytes, %v", len(m.Data), err)
	}
}
