package broadcast_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/recipes/broadcast"
	"github.com/wsnursery/wsnursery/wsconn"
)

// hubServer serves hub: each connection is subscribed, announced on subs,
// and served once gate (if not nil) lets it; Serve's result goes to results.
type hubServer struct {
	url     string
	subs    chan *broadcast.Subscriber
	results chan error
}

func startHub(t *testing.T, hub *broadcast.Hub, gate <-chan struct{}) *hubServer {
	t.Helper()
	hs := &hubServer{subs: make(chan *broadcast.Subscriber, 16), results: make(chan error, 16)}
	hs.url = startServer(t, func(ctx context.Context, c *wsconn.Conn) error {
		s := hub.Subscribe(c)
		hs.subs <- s
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				s.Unsubscribe()
				return nil
			}
		}
		hs.results <- s.Serve(ctx)
		return nil
	})
	return hs
}

func TestPublishFansOutInOrder(t *testing.T) {
	ctx := testCtx(t)
	hub := broadcast.NewHub(nil)
	hs := startHub(t, hub, nil)
	clients := make([]*wsconn.Conn, 3)
	for i := range clients {
		clients[i] = wstest.Dial(t, ctx, hs.url, nil)
		recv(t, ctx, hs.subs)
	}
	if got := hub.Stats().Subscribers; got != 3 {
		t.Fatalf("Subscribers = %d, want 3", got)
	}
	const n = 40
	for i := range n {
		if err := hub.Publish(numbered(i, 100)); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			for _, c := range clients {
				for j := i - 9; j <= i; j++ {
					expectNumber(t, ctx, c, j)
				}
			}
		}
	}
	if err := hub.Publish(wsconn.Message{Type: wsconn.Binary, Data: []byte{0, 1, 2}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		m, err := c.Receive(ctx)
		if err != nil || m.Type != wsconn.Binary || string(m.Data) != "\x00\x01\x02" {
			t.Fatalf("Receive = %v %q, %v; want binary 00 01 02", m.Type, m.Data, err)
		}
	}
	if st := hub.Stats(); st.Dropped != 0 || st.Evicted != 0 {
		t.Fatalf("Stats = %+v, want nothing dropped or evicted", st)
	}
}

// With the writer held back, a queue of 4 that receives 10 messages keeps
// the newest 4.
func TestDropOldestKeepsNewest(t *testing.T) {
	ctx := testCtx(t)
	hub := broadcast.NewHub(&broadcast.Options{QueueSize: 4, Policy: broadcast.DropOldest})
	gate := make(chan struct{})
	hs := startHub(t, hub, gate)
	c := wstest.Dial(t, ctx, hs.url, nil)
	recv(t, ctx, hs.subs)
	for i := range 10 {
		if err := hub.Publish(numbered(i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if st := hub.Stats(); st.Dropped != 6 || st.Evicted != 0 || st.Subscribers != 1 {
		t.Fatalf("Stats = %+v, want 6 dropped, 0 evicted, 1 subscriber", st)
	}
	close(gate)
	for i := 6; i < 10; i++ {
		expectNumber(t, ctx, c, i)
	}
	if err := hub.Publish(numbered(10, 10)); err != nil {
		t.Fatal(err)
	}
	expectNumber(t, ctx, c, 10)
	if r, closing := c.CloseReason(); closing {
		t.Fatalf("connection closing (%v), want it open", r)
	}
}

// With the writer held back, the fifth message for a queue of 4 evicts the
// subscriber, whose connection is then closed with 1008.
func TestDisconnectEvictsWithPolicyViolation(t *testing.T) {
	ctx := testCtx(t)
	hub := broadcast.NewHub(&broadcast.Options{QueueSize: 4, Policy: broadcast.Disconnect})
	gate := make(chan struct{})
	hs := startHub(t, hub, gate)
	c := wstest.Dial(t, ctx, hs.url, nil)
	recv(t, ctx, hs.subs)
	for i := range 5 {
		if err := hub.Publish(numbered(i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if st := hub.Stats(); st.Evicted != 1 || st.Subscribers != 0 || st.Dropped != 0 {
		t.Fatalf("Stats = %+v, want 1 evicted, 0 subscribers, 0 dropped", st)
	}
	close(gate)
	if err := recv(t, ctx, hs.results); !errors.Is(err, broadcast.ErrSlowSubscriber) {
		t.Fatalf("Serve = %v, want ErrSlowSubscriber", err)
	}
	_, err := c.Receive(ctx)
	var ce *wsconn.ConnectionClosedError
	if !errors.As(err, &ce) || ce.Reason.Code != wsconn.StatusPolicyViolation {
		t.Fatalf("Receive = %v, want connection closed with 1008 (queued messages are discarded on eviction)", err)
	}
}

// A subscriber whose peer stops reading stalls its own writer only: the
// others get every message, in lock step with the publisher, while it is
// stuck. Then the policy applies.
func TestSlowSubscriberDoesNotSlowOthers(t *testing.T) {
	for _, policy := range []broadcast.Policy{broadcast.DropOldest, broadcast.Disconnect} {
		t.Run(policy.String(), func(t *testing.T) {
			ctx := testCtx(t)
			hub := broadcast.NewHub(&broadcast.Options{QueueSize: 4, Policy: policy, CloseTimeout: testTimeout})
			hs := startHub(t, hub, nil)
			fast := []*wsconn.Conn{wstest.Dial(t, ctx, hs.url, nil), wstest.Dial(t, ctx, hs.url, nil)}
			recv(t, ctx, hs.subs)
			recv(t, ctx, hs.subs)
			slow := wstest.Dial(t, ctx, hs.url, wstest.SlowClientOptions())
			recv(t, ctx, hs.subs)

			const size, limit = 16 << 10, 2000
			overflowed := func() bool {
				st := hub.Stats()
				return st.Dropped > 0 || st.Evicted > 0
			}
			i := 0
			for ; !overflowed(); i++ {
				if i == limit {
					t.Fatalf("no overflow after %d messages of %d bytes to a client that does not read", limit, size)
				}
				if err := hub.Publish(numbered(i, size)); err != nil {
					t.Fatal(err)
				}
				for _, c := range fast {
					expectNumber(t, ctx, c, i)
				}
			}
			if i < 5 {
				t.Fatalf("overflow after %d messages; the queue of 4 should have overflowed only after the writer stalled", i)
			}
			// The others keep going after the overflow.
			last := i + 3
			for ; i <= last; i++ {
				if err := hub.Publish(numbered(i, size)); err != nil {
					t.Fatal(err)
				}
				for _, c := range fast {
					expectNumber(t, ctx, c, i)
				}
			}
			st := hub.Stats()
			switch policy {
			case broadcast.DropOldest:
				if st.Evicted != 0 || st.Subscribers != 3 {
					t.Fatalf("Stats = %+v, want 0 evicted and 3 subscribers", st)
				}
				// The slow client now reads: an unbroken run from 0, a gap
				// where the oldest were dropped, and the newest.
				prev, gaps := -1, 0
				for prev != last {
					m, err := slow.Receive(ctx)
					if err != nil {
						t.Fatalf("slow client: %v after message %d", err, prev)
					}
					got := number(t, m)
					if got <= prev {
						t.Fatalf("slow client got message %d after %d", got, prev)
					}
					if got != prev+1 {
						gaps++
					}
					prev = got
				}
				if gaps == 0 {
					t.Fatal("slow client got every message; nothing was dropped")
				}
				if r, closing := slow.CloseReason(); closing {
					t.Fatalf("slow client closing (%v), want it open", r)
				}
			case broadcast.Disconnect:
				if st.Evicted != 1 || st.Subscribers != 2 || st.Dropped != 0 {
					t.Fatalf("Stats = %+v, want 1 evicted, 2 subscribers, 0 dropped", st)
				}
				// The slow client now reads: what was in flight, then 1008.
				for {
					_, err := slow.Receive(ctx)
					if err == nil {
						continue
					}
					var ce *wsconn.ConnectionClosedError
					if !errors.As(err, &ce) || ce.Reason.Code != wsconn.StatusPolicyViolation {
						t.Fatalf("slow client: %v, want connection closed with 1008", err)
					}
					break
				}
				if err := recv(t, ctx, hs.results); !errors.Is(err, broadcast.ErrSlowSubscriber) {
					t.Fatalf("Serve = %v, want ErrSlowSubscriber", err)
				}
			}
		})
	}
}

func TestRemovedWhenConnectionDrops(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		ctx := testCtx(t)
		hub := broadcast.NewHub(nil)
		hs := startHub(t, hub, nil)
		c := wstest.Dial(t, ctx, hs.url, nil)
		recv(t, ctx, hs.subs)
		if err := c.Close(ctx, wsconn.StatusGoingAway, "bye"); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, ctx, hs.results); err != nil {
			t.Fatalf("Serve = %v, want nil after the peer closed", err)
		}
		if n := hub.Stats().Subscribers; n != 0 {
			t.Fatalf("Subscribers = %d, want 0", n)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		ctx := testCtx(t)
		hub := broadcast.NewHub(nil)
		hs := startHub(t, hub, nil)
		raw := make(chan net.Conn, 1)
		c := wstest.Dial(t, ctx, hs.url, &wsconn.DialOptions{
			NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err == nil {
					raw <- nc
				}
				return nc, err
			},
		})
		recv(t, ctx, hs.subs)
		(<-raw).Close() // no closing handshake: the server sees the connection lost
		if err := recv(t, ctx, hs.results); err != nil {
			t.Fatalf("Serve = %v, want nil after the connection was lost", err)
		}
		if n := hub.Stats().Subscribers; n != 0 {
			t.Fatalf("Subscribers = %d, want 0", n)
		}
		<-c.Done()
	})
}

func TestUnsubscribeKeepsConnectionOpen(t *testing.T) {
	ctx := testCtx(t)
	hub := broadcast.NewHub(nil)
	subs := make(chan *broadcast.Subscriber, 2)
	results := make(chan error, 2)
	resubscribe := make(chan struct{})
	url := startServer(t, func(ctx context.Context, c *wsconn.Conn) error {
		s := hub.Subscribe(c)
		subs <- s
		results <- s.Serve(ctx)
		select {
		case <-resubscribe:
		case <-ctx.Done():
			return nil
		}
		s = hub.Subscribe(c)
		subs <- s
		results <- s.Serve(ctx)
		return nil
	})
	c := wstest.Dial(t, ctx, url, nil)
	s := recv(t, ctx, subs)
	if s.Conn() == nil {
		t.Fatal("Conn() = nil")
	}
	if err := hub.Publish(text("a")); err != nil {
		t.Fatal(err)
	}
	expectText(t, ctx, c, "a")
	s.Unsubscribe()
	s.Unsubscribe() // idempotent
	if err := recv(t, ctx, results); err != nil {
		t.Fatalf("Serve = %v after Unsubscribe, want nil", err)
	}
	if n := hub.Stats().Subscribers; n != 0 {
		t.Fatalf("Subscribers = %d, want 0", n)
	}
	if err := hub.Publish(text("b")); err != nil { // reaches nobody
		t.Fatal(err)
	}
	close(resubscribe)
	recv(t, ctx, subs)
	if err := hub.Publish(text("c")); err != nil {
		t.Fatal(err)
	}
	expectText(t, ctx, c, "c")
	if r, closing := c.CloseReason(); closing {
		t.Fatalf("connection closing (%v), want it open", r)
	}
}

func TestServeReturnsWhenContextEnds(t *testing.T) {
	ctx := testCtx(t)
	hub := broadcast.NewHub(nil)
	cancels := make(chan context.CancelFunc, 1)
	results := make(chan error, 1)
	url := startServer(t, func(ctx context.Context, c *wsconn.Conn) error {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s := hub.Subscribe(c)
		cancels <- cancel
		results <- s.Serve(sctx)
		return nil
	})
	c := wstest.Dial(t, ctx, url, nil)
	recv(t, ctx, cancels)()
	if err := recv(t, ctx, results); !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v, want context.Canceled", err)
	}
	if n := hub.Stats().Subscribers; n != 0 {
		t.Fatalf("Subscribers = %d, want 0", n)
	}
	if r, closing := c.CloseReason(); closing {
		t.Fatalf("connection closing (%v); Serve must leave it to its owner", r)
	}
}

func TestPublishRejectsUnsendableMessages(t *testing.T) {
	hub := broadcast.NewHub(nil)
	if err := hub.Publish(wsconn.Message{Type: wsconn.Text, Data: []byte{0xff}}); err == nil {
		t.Error("Publish of invalid UTF-8 text succeeded")
	}
	if err := hub.Publish(wsconn.Message{Type: 9, Data: []byte("x")}); err == nil {
		t.Error("Publish of message type 9 succeeded")
	}
}

func TestServeTwiceFails(t *testing.T) {
	ctx := testCtx(t)
	hub := broadcast.NewHub(nil)
	subs := make(chan *broadcast.Subscriber, 1)
	results := make(chan error, 2)
	url := startServer(t, func(ctx context.Context, c *wsconn.Conn) error {
		s := hub.Subscribe(c)
		subs <- s
		results <- s.Serve(ctx)
		results <- s.Serve(ctx)
		return nil
	})
	wstest.Dial(t, ctx, url, nil)
	recv(t, ctx, subs).Unsubscribe()
	if err := recv(t, ctx, results); err != nil {
		t.Fatalf("first Serve = %v, want nil", err)
	}
	if err := recv(t, ctx, results); err == nil {
		t.Fatal("second Serve = nil, want an error")
	}
}

func TestPolicyString(t *testing.T) {
	for p, want := range map[broadcast.Policy]string{
		broadcast.DropOldest: "drop-oldest",
		broadcast.Disconnect: "disconnect",
		7:                    "Policy(7)",
	} {
		if got := p.String(); got != want {
			t.Errorf("Policy(%d).String() = %q, want %q", int(p), got, want)
		}
	}
}
