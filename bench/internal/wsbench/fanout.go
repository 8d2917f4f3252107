package wsbench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/recipes/broadcast"
	"github.com/wsnursery/wsnursery/wsconn"
)

// Fan-out servers: a connection to /pub publishes every message it sends
// to every connection on /sub. Two hubs, each the way its library's users
// would write it:
//
//   - FanoutBroadcast: wsnursery's recipes/broadcast Hub (defaults: a queue
//     of 16 per subscriber, DropOldest), one Subscriber.Serve per connection
//     in the handler's nursery beside the Receive loop the package asks for;
//   - FanoutChat: gorilla/websocket with the hub of gorilla's chat example —
//     one hub goroutine owning the client set, a buffered send channel (256)
//     and a write goroutine per client, a read goroutine per client — except
//     that every message is written as its own WebSocket message (the
//     example packs queued ones into one), so that both hubs deliver the
//     same messages.
const (
	FanoutBroadcast = "fanout-broadcast"
	FanoutChat      = "fanout-chat"
)

// FanoutHubs lists the fan-out servers, baseline (the chat-style hub) first.
func FanoutHubs() []string { return []string{FanoutChat, FanoutBroadcast} }

func (s *Servers) startFanout(ctx context.Context) error {
	hub := broadcast.NewHub(nil)
	ln, err := s.listenPlain(FanoutBroadcast)
	if err != nil {
		return err
	}
	srv := wsconn.NewServer(broadcastHandler(hub), nil)
	s.wg.Go(func() { srv.Serve(ctx, ln) })

	ch := newChatHub()
	s.wg.Go(func() { ch.run(ctx) })
	return s.serveHTTP(FanoutChat, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ch.serve(ctx, &s.wg, w, r) }))
}

func broadcastHandler(hub *broadcast.Hub) wsconn.Handler {
	return func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		if r.Path == "/pub" {
			for {
				m, err := c.Receive(ctx)
				if err != nil {
					return nil
				}
				if err := hub.Publish(m); err != nil {
					return err
				}
			}
		}
		sub := hub.Subscribe(c)
		return nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(sub.Serve)
			for {
				if _, err := c.Receive(ctx); err != nil {
					return nil
				}
			}
		})
	}
}

// chatHub is the hub of gorilla's chat example, in outline.
type chatHub struct {
	clients    map[*chatClient]struct{}
	register   chan *chatClient
	unregister chan *chatClient
	broadcast  chan []byte
}

type chatClient struct {
	ws   *websocket.Conn
	send chan []byte
}

func newChatHub() *chatHub {
	return &chatHub{
		clients:    map[*chatClient]struct{}{},
		register:   make(chan *chatClient),
		unregister: make(chan *chatClient),
		broadcast:  make(chan []byte),
	}
}

func (h *chatHub) run(ctx context.Context) {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = struct{}{}
		case c := <-h.unregister:
			if _, ok := h.clients[c]; ok {
				delete(h.clients, c)
				close(c.send)
			}
		case m := <-h.broadcast:
			for c := range h.clients {
				select {
				case c.send <- m:
				default: // too slow: dropped, as in the example
					close(c.send)
					delete(h.clients, c)
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// serve upgrades and starts the client's goroutines (tracked by wg, so that
// Servers.Close waits for them) and returns, as the example's serveWs does.
func (h *chatHub) serve(ctx context.Context, wg *sync.WaitGroup, w http.ResponseWriter, r *http.Request) {
	var up websocket.Upgrader
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &chatClient{ws: ws, send: make(chan []byte, 256)}
	pub := r.URL.Path == "/pub"
	if !pub {
		select {
		case h.register <- c:
		case <-ctx.Done():
			ws.Close()
			return
		}
		wg.Go(func() { c.writePump(ctx) })
	}
	wg.Go(func() { c.readPump(ctx, h, pub) })
}

func (c *chatClient) readPump(ctx context.Context, h *chatHub, pub bool) {
	defer func() {
		if !pub {
			select {
			case h.unregister <- c:
			case <-ctx.Done():
			}
		}
		c.ws.Close()
	}()
	for {
		_, p, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if pub {
			select {
			case h.broadcast <- p:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (c *chatClient) writePump(ctx context.Context) {
	defer c.ws.Close()
	for {
		select {
		case m, ok := <-c.send:
			if !ok {
				return
			}
			c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.ws.WriteMessage(websocket.BinaryMessage, m); err != nil {
				return
			}
		case <-ctx.Done(): // the hub is gone with the server
			return
		}
	}
}

// FanoutResult is one hub's fan-out figures.
type FanoutResult struct {
	Hub         string
	Subscribers int
	// Latency: one publish at a time, from the publisher's send until the
	// last subscriber has the message; sorted.
	Latency []time.Duration
	// Saturation: publishes kept in flight (FanoutInFlight at a time) for
	// the window; Deliveries messages reached subscribers in Elapsed.
	Deliveries           int64
	Elapsed              time.Duration
	ClientCPU, ServerCPU time.Duration // in the saturation window
}

// Rate is delivered messages per second at saturation.
func (r FanoutResult) Rate() float64 { return float64(r.Deliveries) / r.Elapsed.Seconds() }

// FanoutInFlight is how many publishes the saturation run keeps in flight:
// fewer than either hub queues per subscriber, so none drops a message.
const FanoutInFlight = 8

// fanRing is how many publishes the subscribers' arrival counts track.
const fanRing = 1024

type fanSlot struct {
	n    atomic.Int64
	last atomic.Int64 // unix nanoseconds when the last subscriber got it
	_    [48]byte
}

// Fanout connects n subscribers (gorilla clients, each reading on its own
// goroutine, the same for every hub) and one publisher to the fan-out
// server hub of srv, then measures latency over pubs single publishes and
// throughput at saturation over window.
func Fanout(ctx context.Context, srv *ServerProc, hub string, n, pubs int, window time.Duration) (FanoutResult, error) {
	res := FanoutResult{Hub: hub, Subscribers: n}
	addr := srv.Addrs[hub]
	gorilla := Lib{Name: "gorilla", Kind: KindGorilla}
	subs, err := dialMany(ctx, gorilla, DialConfig{Addr: addr, Path: "/sub"}, n)
	if err != nil {
		return res, err
	}
	pub, err := Dial(ctx, gorilla, DialConfig{Addr: addr, Path: "/pub"})
	if err != nil {
		for _, c := range subs {
			c.Close()
		}
		return res, err
	}
	var (
		ring     [fanRing]fanSlot
		complete = make(chan uint64, fanRing)
		wg       sync.WaitGroup
	)
	for _, c := range subs {
		wg.Go(func() {
			for {
				p, err := c.Recv(ctx)
				if err != nil {
					return
				}
				if len(p) < 8 {
					continue
				}
				seq := binary.BigEndian.Uint64(p)
				sl := &ring[seq%fanRing]
				if sl.n.Add(1) == int64(n) {
					sl.last.Store(time.Now().UnixNano())
					select {
					case complete <- seq:
					default:
					}
				}
			}
		})
	}
	defer func() {
		pub.Close()
		for _, c := range subs {
			c.Close()
		}
		wg.Wait()
	}()

	var seq uint64
	msg := make([]byte, 16)
	sent := map[uint64]time.Time{}
	publish := func() error {
		seq++
		sl := &ring[seq%fanRing]
		sl.n.Store(0)
		binary.BigEndian.PutUint64(msg, seq)
		sent[seq] = time.Now()
		if err := pub.Send(ctx, msg); err != nil {
			return fmt.Errorf("failed to publish: %w", err)
		}
		return nil
	}
	// wait returns the next completed publish, or false after timeout.
	wait := func(timeout time.Duration) (uint64, bool, error) {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case s := <-complete:
			return s, true, nil
		case <-t.C:
			return 0, false, nil
		case <-ctx.Done():
			return 0, false, ctx.Err()
		}
	}

	// Subscribing finishes after the handshake: publish until one reaches
	// everybody.
	for attempt := 0; ; attempt++ {
		if attempt == 60 {
			return res, errors.New("fan-out: no publish reached every subscriber within 30 s")
		}
		if err := publish(); err != nil {
			return res, err
		}
		_, ok, err := wait(500 * time.Millisecond)
		if err != nil {
			return res, err
		}
		if ok {
			break
		}
	}
	// Drain completions of earlier attempts that finished late.
	for len(complete) > 0 {
		<-complete
	}

	const stall = 10 * time.Second
	for range pubs {
		if err := publish(); err != nil {
			return res, err
		}
		want := seq
		for {
			s, ok, err := wait(stall)
			if err != nil {
				return res, err
			}
			if !ok {
				return res, fmt.Errorf("fan-out: publish %d did not reach every subscriber within %v", want, stall)
			}
			if s == want {
				break
			}
		}
		res.Latency = append(res.Latency, time.Unix(0, ring[want%fanRing].last.Load()).Sub(sent[want]))
		if !sleepCtx(ctx, 2*time.Millisecond) {
			return res, ctx.Err()
		}
	}
	slices.Sort(res.Latency)

	s0, err := srv.Stats(ctx, false)
	if err != nil {
		return res, err
	}
	c0 := cpuTime()
	start := time.Now()
	for range FanoutInFlight {
		if err := publish(); err != nil {
			return res, err
		}
	}
	var done int64
	for time.Since(start) < window {
		if _, ok, err := wait(stall); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("fan-out: a publish did not reach every subscriber within %v", stall)
			}
			return res, err
		}
		done++
		if err := publish(); err != nil {
			return res, err
		}
	}
	res.Elapsed = time.Since(start)
	res.ClientCPU = cpuTime() - c0
	s1, err := srv.Stats(ctx, false)
	if err != nil {
		return res, err
	}
	res.ServerCPU = s1.CPU - s0.CPU
	res.Deliveries = done * int64(n)
	return res, nil
}
