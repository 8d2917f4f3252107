package wsconn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/wsconn"
)

// pingPeer is a raw peer that reports the pings it receives on pings and
// answers none by itself; it writes the frames sent on ctl.
type ctlFrame struct {
	typ     int
	payload string
}

func pingPeer(t *testing.T) (url string, pings chan string, ctl chan ctlFrame) {
	pings, ctl = make(chan string, 16), make(chan ctlFrame)
	url = rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.SetPingHandler(func(s string) error { pings <- s; return nil })
		go func() {
			for f := range ctl {
				ws.WriteControl(f.typ, []byte(f.payload), time.Now().Add(5*time.Second))
			}
		}()
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})
	t.Cleanup(func() { close(ctl) })
	return url, pings, ctl
}

func TestPingNilPayloadIsFourRandomBytes(t *testing.T) {
	url, pings, ctl := pingPeer(t)
	c := dial(t, url, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	var seen []string
	for range 2 {
		errc := make(chan error)
		go func() { errc <- c.Ping(ctx, nil) }()
		p := <-pings
		seen = append(seen, p)
		ctl <- ctlFrame{websocket.PongMessage, p}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if len(seen[0]) != 4 || len(seen[1]) != 4 || seen[0] == seen[1] {
		t.Fatalf("payloads %q: want two different 4-byte payloads", seen)
	}
}

func TestPingPayloadOver125BytesSendsNothing(t *testing.T) {
	url, pings, ctl := pingPeer(t)
	c := dial(t, url, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	if err := c.Ping(ctx, make([]byte, 126)); err == nil {
		t.Fatal("Ping accepted 126 bytes")
	}
	errc := make(chan error)
	go func() { errc <- c.Ping(ctx, []byte(strings.Repeat("x", 125))) }()
	if p := <-pings; len(p) != 125 {
		t.Fatalf("first ping the peer saw has %d bytes, want the 125-byte one", len(p))
	}
	ctl <- ctlFrame{websocket.PongMessage, strings.Repeat("x", 125)}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestPingSamePayloadInFlight(t *testing.T) {
	url, pings, ctl := pingPeer(t)
	c := dial(t, url, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	errc := make(chan error)
	go func() { errc <- c.Ping(ctx, []byte("x")) }()
	<-pings
	if err := c.Ping(ctx, []byte("x")); !errors.Is(err, wsconn.ErrPingInFlight) {
		t.Fatalf("second Ping(x) = %v, want ErrPingInFlight", err)
	}
	go func() { c.Ping(ctx, []byte("y")) }()
	if p := <-pings; p != "y" {
		t.Fatalf("peer saw %q after the refused ping, want \"y\"", p)
	}
	ctl <- ctlFrame{websocket.PongMessage, "y"} // answers x too
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// A pong answers its ping and every ping sent before it; unknown pongs are
// ignored.
func TestPongResolvesItsPingAndEarlierOnes(t *testing.T) {
	url, pings, ctl := pingPeer(t)
	c := dial(t, url, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	results := map[string]chan error{}
	for _, p := range []string{"1", "2", "3"} {
		results[p] = make(chan error, 1)
		go func() { results[p] <- c.Ping(ctx, []byte(p)) }()
		<-pings // sent in this order
	}
	ctl <- ctlFrame{websocket.PongMessage, "2"}
	for _, p := range []string{"1", "2"} {
		if err := <-results[p]; err != nil {
			t.Fatalf("Ping(%s) = %v", p, err)
		}
	}
	ctl <- ctlFrame{websocket.PongMessage, "unknown"}
	// A round trip that proves the unknown pong has been read.
	go func() { c.Ping(ctx, []byte("probe")) }()
	<-pings
	ctl <- ctlFrame{websocket.PongMessage, "probe"} // resolves 3 as well: sent before probe
	if err := <-results["3"]; err != nil {
		t.Fatalf("Ping(3) = %v", err)
	}
}

// A ping whose ctx ends stops waiting and frees its payload; a late pong is
// harmless.
func TestPingContextEndsDeregisters(t *testing.T) {
	url, pings, ctl := pingPeer(t)
	c := dial(t, url, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	pctx, cancel := context.WithCancel(ctx)
	errc := make(chan error)
	go func() { errc <- c.Ping(pctx, []byte("p")) }()
	<-pings
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping = %v, want context.Canceled", err)
	}
	ctl <- ctlFrame{websocket.PongMessage, "p"} // late
	go func() { errc <- c.Ping(ctx, []byte("p")) }()
	<-pings
	ctl <- ctlFrame{websocket.PongMessage, "p"}
	if err := <-errc; err != nil {
		t.Fatalf("Ping(p) again = %v", err)
	}
	if err := c.SendText(ctx, "still open"); err != nil {
		t.Fatal(err)
	}
}

// A ping waiting when the connection closes returns at once.
func TestPingWaitingWhenConnectionCloses(t *testing.T) {
	for _, who := range []string{"peer", "local"} {
		t.Run(who, func(t *testing.T) {
			url, pings, ctl := pingPeer(t)
			c := dial(t, url, nil)
			ctx := ctxTimeout(t, 10*time.Second)
			errc := make(chan error)
			go func() { errc <- c.Ping(ctx, []byte("p")) }()
			<-pings
			if who == "peer" {
				ctl <- ctlFrame{websocket.CloseMessage, string(websocket.FormatCloseMessage(4000, "gone"))}
				wantClosed(t, <-errc, 4000, "gone")
				return
			}
			closed := make(chan error, 1)
			go func() { closed <- c.Close(ctx, 4100, "leaving") }()
			wantClosed(t, <-errc, 4100, "*")
			if err := <-closed; err != nil {
				t.Fatalf("Close = %v", err)
			}
		})
	}
}

// OnPing and OnPong observe the peer's control frames; the ping is still
// answered.
func TestPingPongObservers(t *testing.T) {
	pongs, ctl := make(chan string, 4), make(chan ctlFrame)
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.SetPongHandler(func(s string) error { pongs <- s; return nil })
		go func() {
			for f := range ctl {
				ws.WriteControl(f.typ, []byte(f.payload), time.Now().Add(5*time.Second))
			}
		}()
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})
	t.Cleanup(func() { close(ctl) })
	seenPing, seenPong := make(chan string, 1), make(chan string, 1)
	c := dial(t, url, &wsconn.DialOptions{
		OnPing: func(p []byte) { seenPing <- string(p) },
		OnPong: func(p []byte) { seenPong <- string(p) },
	})
	ctx := ctxTimeout(t, 10*time.Second)
	ctl <- ctlFrame{websocket.PongMessage, "unsolicited"}
	if got := <-seenPong; got != "unsolicited" {
		t.Fatalf("OnPong saw %q", got)
	}
	ctl <- ctlFrame{websocket.PingMessage, "hello"}
	if got := <-seenPing; got != "hello" {
		t.Fatalf("OnPing saw %q", got)
	}
	if got := within(t, 10*time.Second, pongs); got != "hello" {
		t.Fatalf("the peer got pong %q, want the answer to its ping", got)
	}
	select {
	case p := <-seenPong:
		t.Fatalf("OnPong saw %q: our own pong is not the peer's", p)
	default:
	}
	if err := c.Ping(ctx, []byte("ours")); err != nil {
		t.Fatal(err)
	}
}

// A pong that arrives just before the peer's Close still answers its ping:
// the close must not win over it.
func TestPongBeforeCloseAnswersPing(t *testing.T) {
	for i := range 50 {
		url, pings, ctl := pingPeer(t)
		c := dial(t, url, nil)
		ctx := ctxTimeout(t, 10*time.Second)
		errc := make(chan error)
		go func() { errc <- c.Ping(ctx, []byte("p")) }()
		<-pings
		ctl <- ctlFrame{websocket.PongMessage, "p"}
		ctl <- ctlFrame{websocket.CloseMessage, string(websocket.FormatCloseMessage(4000, "bye"))}
		if err := <-errc; err != nil {
			t.Fatalf("round %d: Ping = %v, want nil: its pong came before the close", i, err)
		}
	}
}
