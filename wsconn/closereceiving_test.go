package wsconn_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/wsconn"
)

// lastWordsPeer answers a Close frame only after sending the messages in
// words, as a server finishing its replies would.
func lastWordsPeer(t *testing.T, words ...string) string {
	return rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.SetCloseHandler(func(code int, text string) error {
			for _, w := range words {
				if err := ws.WriteMessage(websocket.TextMessage, []byte(w)); err != nil {
					return err
				}
			}
			return ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(5*time.Second))
		})
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})
}

// CloseReceiving keeps what arrives before the peer's Close for Receive;
// Close discards it.
func TestCloseReceivingDeliversLastMessages(t *testing.T) {
	url := lastWordsPeer(t, "one", "two", "three")
	t.Run("CloseReceiving", func(t *testing.T) {
		c := dial(t, url, nil)
		ctx := ctxTimeout(t, 10*time.Second)
		closed := make(chan error, 1)
		go func() { closed <- c.CloseReceiving(ctx, wsconn.StatusNormalClosure, "bye") }()
		for _, want := range []string{"one", "two", "three"} {
			m, err := c.Receive(ctx)
			if err != nil || string(m.Data) != want {
				t.Fatalf("Receive = %q, %v; want %q", m.Data, err, want)
			}
		}
		_, err := c.Receive(ctx)
		wantClosed(t, err, wsconn.StatusNormalClosure, "bye")
		if err := <-closed; err != nil {
			t.Fatalf("CloseReceiving = %v", err)
		}
	})
	t.Run("Close", func(t *testing.T) {
		c := dial(t, url, nil)
		ctx := ctxTimeout(t, 10*time.Second)
		if err := c.Close(ctx, wsconn.StatusNormalClosure, "bye"); err != nil {
			t.Fatalf("Close = %v", err)
		}
		_, err := c.Receive(ctx)
		wantClosed(t, err, wsconn.StatusNormalClosure, "bye")
	})
}

// Nobody receiving: the reader waits on the full queue, never reads the
// peer's Close, and the handshake ends by the disconnect timeout.
func TestCloseReceivingNeedsAReceiver(t *testing.T) {
	url := lastWordsPeer(t, "one", "two", "three")
	c := dial(t, url, &wsconn.DialOptions{DisconnectTimeout: 200 * time.Millisecond})
	err := c.CloseReceiving(ctxTimeout(t, 10*time.Second), wsconn.StatusNormalClosure, "")
	if err == nil || !errors.Is(err, wsconn.ErrDisconnectionTimeout) {
		t.Fatalf("CloseReceiving with nobody receiving = %v, want ErrDisconnectionTimeout", err)
	}
}

// Close the connection without losing the messages that have arrived but
// not been received yet: here two, which Close would discard.
func ExampleConn_CloseReceiving() {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	sent := make(chan struct{})
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		c.SendText(ctx, "one")
		c.SendText(ctx, "two")
		close(sent)
		<-ctx.Done() // until the client closes
		return nil
	}, nil)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	defer func() { stop(); <-served }()

	// Room for both messages, so that the reader goes on to the pong.
	c, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String()+"/", &wsconn.DialOptions{MessageQueueSize: 2})
	if err != nil {
		panic(err)
	}
	<-sent
	if err := c.Ping(ctx, nil); err != nil { // the pong comes after both messages
		panic(err)
	}

	done := make(chan error, 1)
	go func() { done <- c.CloseReceiving(ctx, wsconn.StatusNormalClosure, "bye") }()
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println("<", string(m.Data))
	}
	fmt.Println("CloseReceiving:", <-done)
	// Output:
	// < one
	// < two
	// websocket connection closed: 1000 (normal closure): "bye"
	// CloseReceiving: <nil>
}
