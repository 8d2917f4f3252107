package natsbroker_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsnursery/wsnursery/internal/natstest"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/recipes/broadcast"
	"github.com/wsnursery/wsnursery/recipes/broadcast/natsbroker"
	"github.com/wsnursery/wsnursery/wsconn"
)

func TestTwoNodesBothWays(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	n1, n2 := startNode(t, srv.URL(), nil, nil), startNode(t, srv.URL(), nil, nil)
	n1.flush(t)
	n2.flush(t)
	a := n1.subscribe(t, ctx, "room", nil)
	b := n2.subscribe(t, ctx, "room", nil)
	other := n2.subscribe(t, ctx, "other", nil)

	publish(t, n1.broker, "room", text("from node 1"))
	expectText(t, ctx, a, "from node 1")
	expectText(t, ctx, b, "from node 1")
	publish(t, n2.broker, "room", wsconn.Message{Type: wsconn.Binary, Data: []byte{0, 1, 2}})
	for _, c := range []*wsconn.Conn{a, b} {
		if m, err := c.Receive(ctx); err != nil || m.Type != wsconn.Binary || string(m.Data) != "\x00\x01\x02" {
			t.Fatalf("Receive = %v %q, %v; want binary 00 01 02 from node 2", m.Type, m.Data, err)
		}
	}
	publish(t, n1.broker, "other", text("other topic"))
	expectText(t, ctx, other, "other topic")
	if err := n1.broker.PublishTo("room", wsconn.Message{Type: wsconn.Text, Data: []byte{0xff}}); err == nil {
		t.Fatal("PublishTo accepted invalid UTF-8")
	}
	if err := n1.broker.PublishTo(strings.Repeat("t", 1<<16), text("x")); err == nil {
		t.Fatal("PublishTo accepted a topic of 64 KiB")
	}
	if st := n2.broker.Stats(); st.Received != 2 || st.Malformed != 0 {
		t.Fatalf("node 2 Stats = %+v, want 2 received (room and other), none malformed", st)
	}
}

// One publisher's 300 messages reach a subscriber on its own node and one
// on the other node in order, each once: no echo of its own messages back
// from NATS.
func TestOrderedOnceOnBothNodes(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	hubOpts := &broadcast.Options{QueueSize: 512} // room for the burst: this test is about order, not policy
	n1, n2 := startNode(t, srv.URL(), nil, hubOpts), startNode(t, srv.URL(), nil, hubOpts)
	n1.flush(t)
	n2.flush(t)
	local, remote := n1.subscribe(t, ctx, "room", nil), n2.subscribe(t, ctx, "room", nil)
	const n = 300
	for i := range n {
		publish(t, n1.broker, "room", numbered(i))
	}
	publish(t, n1.broker, "room", text("end"))
	var wg sync.WaitGroup
	for name, c := range map[string]*wsconn.Conn{"node 1": local, "node 2": remote} {
		wg.Go(func() {
			var got []string
			for {
				m, err := c.Receive(ctx)
				if err != nil {
					t.Errorf("%s: Receive after %d messages: %v", name, len(got), err)
					return
				}
				if string(m.Data) == "end" {
					break
				}
				got = append(got, string(m.Data))
			}
			for i, s := range got {
				if s != strconv.Itoa(i) {
					t.Errorf("%s: message %d is %q (%d messages in all), want each of 0..%d once in order", name, i, s, len(got), n-1)
					return
				}
			}
			if len(got) != n {
				t.Errorf("%s: %d messages before end, want %d", name, len(got), n)
			}
		})
	}
	wg.Wait()
	if st := n1.hub.Stats(); st.Dropped != 0 {
		t.Fatalf("hub dropped %d", st.Dropped)
	}
}

// Presence covers every node; a goodbye removes a node at once, a node that
// vanishes without one (its NATS connection cut, as a SIGKILL would) within
// the expiry; OnNodeGone reports the members that are gone.
func TestPresenceAcrossNodes(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	type goneCall struct {
		topic string
		gone  []string
	}
	gone := make(chan goneCall, 8)
	opts := &natsbroker.Options{
		HeartbeatInterval: 100 * time.Millisecond,
		PresenceExpiry:    500 * time.Millisecond,
		OnNodeGone:        func(topic string, g []string) { gone <- goneCall{topic, g} },
	}
	n1 := startNode(t, srv.URL(), opts, nil)
	n2 := startNode(t, srv.URL(), &natsbroker.Options{HeartbeatInterval: 100 * time.Millisecond}, nil)
	n3 := startNode(t, srv.URL(), &natsbroker.Options{HeartbeatInterval: 100 * time.Millisecond}, nil)
	members := func(b *natsbroker.Broker, want ...string) func() bool {
		return func() bool { return slices.Equal(b.Members("room"), want) }
	}

	defer n1.broker.Join("room", "alice")()
	leaveBob := n2.broker.Join("room", "bob")
	n2.broker.Join("hall", "bob")
	n3.broker.Join("room", "carol")
	n3.broker.Join("room", "alice") // on two nodes: stays while either has her
	eventually(t, ctx, "node 1 to see alice, bob and carol", members(n1.broker, "alice", "bob", "carol"))
	eventually(t, ctx, "node 2 to see alice, bob and carol", members(n2.broker, "alice", "bob", "carol"))
	if got := n1.broker.Members("hall"); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("node 1 Members(hall) = %q", got)
	}

	leaveBob()
	eventually(t, ctx, "node 1 to see bob leave the room", members(n1.broker, "alice", "carol"))
	n2.stop(t) // a goodbye
	eventually(t, ctx, "node 1 to forget node 2", func() bool { return len(n1.broker.Members("hall")) == 0 })
	if g := wstest.Recv(t, ctx, gone); g.topic != "hall" || !slices.Equal(g.gone, []string{"bob"}) {
		t.Fatalf("OnNodeGone(%q, %q), want hall, [bob]", g.topic, g.gone)
	}

	start := time.Now()
	n3.nc.Close() // node 3 vanishes: no goodbye
	if g := wstest.Recv(t, ctx, gone); g.topic != "room" || !slices.Equal(g.gone, []string{"carol"}) {
		t.Fatalf("OnNodeGone(%q, %q), want room, [carol] (alice is still on node 1)", g.topic, g.gone)
	}
	if d := time.Since(start); d > opts.PresenceExpiry+2*opts.HeartbeatInterval+3*time.Second {
		t.Fatalf("node 3 expired after %v, want about expiry + interval", d)
	}
	if got := n1.broker.Members("room"); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("node 1 Members(room) = %q, want [alice]", got)
	}
}

// A message on the broker's subjects that is not ours is dropped with a
// log record, never delivered, and the broker carries on.
func TestMalformedDropped(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	logs := newLogRecords()
	n1 := startNode(t, srv.URL(), &natsbroker.Options{Prefix: "app", Logger: logs.logger()}, nil)
	n2 := startNode(t, srv.URL(), &natsbroker.Options{Prefix: "app"}, nil)
	n1.flush(t)
	n2.flush(t)
	c := n1.subscribe(t, ctx, "room", nil)

	foreign, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	bad := map[string][]string{
		"app.msg": {
			"hello",                      // no envelope
			"WSN1x\x01n\x00\x04roomhi",   // unknown type
			"WSN1t\x05n\x00\x04roomhi",   // node id past the end
			"WSN1t\x01n\x00\x09roomhi",   // topic past the end
			"WSN1t\x01n\x00\x04room\xff", // text that is not UTF-8
			"WSN1t\x00\x00\x04roomhi",    // no node id
		},
		"app.presence": {"{", `{"node":"x","kind":"party"}`, `{"kind":"beat"}`},
		"app.other":    {"a subject of the prefix that is not ours"},
	}
	want := 0
	for subj, msgs := range bad {
		for _, m := range msgs {
			if err := foreign.Publish(subj, []byte(m)); err != nil {
				t.Fatal(err)
			}
			want++
		}
	}
	if err := foreign.Flush(); err != nil {
		t.Fatal(err)
	}
	publish(t, n2.broker, "room", text("real")) // after the junk, on another connection
	expectText(t, ctx, c, "real")
	eventually(t, ctx, "every junk message counted", func() bool { return n1.broker.Stats().Malformed == uint64(want) })
	if n := logs.count(slog.LevelWarn, "dropped a message that is not ours") + logs.count(slog.LevelWarn, "dropped a presence message that is not ours") + logs.count(slog.LevelWarn, "dropped a message on a subject that is not ours"); n == 0 {
		t.Fatal("no warning logged for the malformed messages")
	}
	if got := n1.broker.Members("room"); len(got) != 0 {
		t.Fatalf("Members = %q: junk presence was recorded", got)
	}
}

// A subscriber on node 2 that stops reading is evicted by node 2's policy;
// node 1 and the other subscribers get every message, at their pace.
func TestSlowSubscriberOnOtherNode(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	n1 := startNode(t, srv.URL(), nil, &broadcast.Options{QueueSize: 8, Policy: broadcast.Disconnect})
	n2 := startNode(t, srv.URL(), nil, &broadcast.Options{QueueSize: 8, Policy: broadcast.Disconnect, CloseTimeout: time.Second})
	n1.flush(t)
	n2.flush(t)
	fast1 := n1.subscribe(t, ctx, "room", nil)
	fast2 := n2.subscribe(t, ctx, "room", nil)
	slow := n2.subscribe(t, ctx, "room", wstest.SlowClientOptions()) // does not read until the end

	payload := string(make([]byte, 1000))
	const n, batch = 1000, 4
	for i := 0; i < n; i += batch {
		for j := i; j < i+batch; j++ {
			publish(t, n1.broker, "room", text(strconv.Itoa(j)+payload))
		}
		for _, c := range []*wsconn.Conn{fast1, fast2} {
			for j := i; j < i+batch; j++ {
				expectText(t, ctx, c, strconv.Itoa(j)+payload)
			}
		}
	}
	if err := wstest.Recv(t, ctx, n2.served); !errors.Is(err, broadcast.ErrSlowSubscriber) {
		t.Fatalf("slow subscriber's Serve = %v, want ErrSlowSubscriber", err)
	}
	for { // what the slow client got before its eviction, then the end
		_, err := slow.Receive(ctx)
		if errors.Is(err, wsconn.ErrConnectionClosed) {
			break // 1008, or 1006 if the Close frame could not get out within CloseTimeout
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := n2.hub.Stats(); st.Evicted != 1 || st.Subscribers != 1 {
		t.Fatalf("node 2 hub Stats = %+v, want the slow subscriber evicted and the fast one left", st)
	}
	if st := n1.hub.Stats(); st.Evicted != 0 {
		t.Fatalf("node 1 hub Stats = %+v, want nobody evicted", st)
	}
}

// Subjects carry the prefix: brokers with different prefixes on one NATS
// do not hear each other.
func TestPrefixSeparatesApps(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	a1 := startNode(t, srv.URL(), &natsbroker.Options{Prefix: "app-a"}, nil)
	b1 := startNode(t, srv.URL(), &natsbroker.Options{Prefix: "app-b"}, nil)
	a2 := startNode(t, srv.URL(), &natsbroker.Options{Prefix: "app-a"}, nil)
	for _, n := range []*node{a1, b1, a2} {
		n.flush(t)
	}
	cb := b1.subscribe(t, ctx, "room", nil)
	ca := a2.subscribe(t, ctx, "room", nil)
	publish(t, a1.broker, "room", text("for app a"))
	publish(t, b1.broker, "room", text("for app b"))
	expectText(t, ctx, ca, "for app a")
	expectText(t, ctx, cb, "for app b")
	if st := b1.broker.Stats(); st.Received != 0 || st.Malformed != 0 {
		t.Fatalf("app b's Stats = %+v, want nothing from app a", st)
	}
}

// NATS killed (SIGKILL, a child process) and restarted on the same port:
// local delivery never stops, cross-node delivery comes back by itself.
func TestNATSKilledAndRestarted(t *testing.T) {
	ctx := testCtx(t)
	proc := natstest.StartProcess(t, 0)
	n1, n2 := startNode(t, proc.URL(), nil, nil), startNode(t, proc.URL(), nil, nil)
	n1.flush(t)
	n2.flush(t)
	local, remote := n1.subscribe(t, ctx, "room", nil), n2.subscribe(t, ctx, "room", nil)
	publish(t, n1.broker, "room", text("before"))
	expectText(t, ctx, local, "before")
	expectText(t, ctx, remote, "before")

	proc.Kill()
	eventually(t, ctx, "node 1 to notice", func() bool { return !n1.nc.IsConnected() })
	const outage = 5
	for i := range outage { // NATS down: node 1's own subscribers still get everything at once
		publish(t, n1.broker, "room", numbered(i))
		expectText(t, ctx, local, strconv.Itoa(i))
	}
	proc.Restart()
	d, during := resumeWithin(t, ctx, n1.broker, "room", remote, 10*time.Second)
	t.Logf("cross-node delivery resumed %v after the restart; node 2 got %q of the %d messages published during the outage", d, during, outage)
	// What node 1 published while NATS was down is lost, or reaches node 2
	// late (nats.go's reconnect buffer, if node 2 reconnected first): in
	// order, each at most once, nothing else.
	next := 0
	for _, s := range during {
		i, err := strconv.Atoi(s)
		if err != nil || i < next || i >= outage {
			t.Fatalf("node 2 got %q before the probe, want an in-order subset of 0..%d each at most once", during, outage-1)
		}
		next = i + 1
	}
}

// With a 3-server cluster, killing the server a node is connected to stops
// its cross-node traffic for at most 10 s, both ways.
func TestClusterFailover(t *testing.T) {
	ctx := testCtx(t)
	servers := natstest.Cluster(t, 3)
	urls := natstest.URLs(servers)
	n1, n2 := startNode(t, urls, nil, nil), startNode(t, urls, nil, nil)
	a, b := n1.subscribe(t, ctx, "room", nil), n2.subscribe(t, ctx, "room", nil)
	resumeWithin(t, ctx, n1.broker, "room", b, 10*time.Second) // interest spreads over the routes
	resumeWithin(t, ctx, n2.broker, "room", a, 10*time.Second)
	drain(ctx, a)
	drain(ctx, b)

	url := n1.nc.ConnectedUrl()
	var victim *natstest.Server
	for _, s := range servers {
		if s.URL() == url {
			victim = s
		}
	}
	if victim == nil {
		t.Fatalf("node 1 connected to %q, not one of %s", url, urls)
	}
	victim.Shutdown()
	d1, _ := resumeWithin(t, ctx, n1.broker, "room", b, 10*time.Second)
	d2, _ := resumeWithin(t, ctx, n2.broker, "room", a, 10*time.Second)
	t.Logf("after killing %s: node 1 → 2 resumed in %v, 2 → 1 in %v (node 1 now on %s)", url, d1, d2, n1.nc.ConnectedUrl())
}

// drain discards what c has already been sent (late probes).
func drain(ctx context.Context, c *wsconn.Conn) {
	for {
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := c.Receive(dctx)
		cancel()
		if err != nil {
			return
		}
	}
}

// NATS unreachable when a node starts: it serves locally, and joins the
// others once NATS is up.
func TestNATSUnreachableAtStart(t *testing.T) {
	ctx := testCtx(t)
	port := natstest.FreePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	n1 := startNode(t, url, nil, nil)
	if n1.nc.IsConnected() {
		t.Fatal("connected to a port with no server")
	}
	local := n1.subscribe(t, ctx, "room", nil)
	publish(t, n1.broker, "room", text("alone"))
	expectText(t, ctx, local, "alone")

	proc := natstest.StartProcess(t, port)
	n2 := startNode(t, proc.URL(), nil, nil)
	n2.flush(t)
	remote := n2.subscribe(t, ctx, "room", nil)
	d, _ := resumeWithin(t, ctx, n1.broker, "room", remote, 10*time.Second)
	t.Logf("node 1 reached node 2 %v after NATS came up", d)
}

// After Close the broker delivers locally only and says nothing more.
func TestCloseIsLocalOnly(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	n1, n2 := startNode(t, srv.URL(), nil, nil), startNode(t, srv.URL(), nil, nil)
	n1.flush(t)
	n2.flush(t)
	local, remote := n1.subscribe(t, ctx, "room", nil), n2.subscribe(t, ctx, "room", nil)
	defer n1.broker.Join("room", "alice")()
	defer n2.broker.Join("room", "bob")()
	eventually(t, ctx, "node 1 to see bob", func() bool { return slices.Equal(n1.broker.Members("room"), []string{"alice", "bob"}) })
	n1.stop(t)
	n1.stop(t) // idempotent
	if got := n1.broker.Members("room"); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("node 1 Members after Close = %q, want its own [alice]", got)
	}
	sent := n1.broker.Stats().Sent
	publish(t, n1.broker, "room", text("after close"))
	expectText(t, ctx, local, "after close")
	publish(t, n2.broker, "room", text("from node 2"))
	expectText(t, ctx, remote, "from node 2")
	if st := n1.broker.Stats(); st.Sent != sent || st.Received != 0 {
		t.Fatalf("node 1 Stats after Close = %+v, want nothing more sent (%d) and nothing received", st, sent)
	}
}

// A node that starts hears of the members already present elsewhere
// through OnNodeAppeared; a member's Join is visible on another node before
// any message its node published after it.
func TestNodeAppearedAndJoinBeforeMessages(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	n2 := startNode(t, srv.URL(), nil, nil)
	defer n2.broker.Join("room", "bob")()
	n2.flush(t)
	type call struct {
		topic   string
		members []string
	}
	appeared := make(chan call, 4)
	n1 := startNode(t, srv.URL(), &natsbroker.Options{
		OnNodeAppeared: func(topic string, members []string) { appeared <- call{topic, members} },
	}, nil)
	if c := wstest.Recv(t, ctx, appeared); c.topic != "room" || !slices.Equal(c.members, []string{"bob"}) {
		t.Fatalf("OnNodeAppeared(%q, %q), want room, [bob]", c.topic, c.members)
	}
	n1.flush(t)
	sub := n1.subscribe(t, ctx, "room", nil)
	for i := range 20 {
		name := "carol-" + strconv.Itoa(i)
		leave := n2.broker.Join("room", name)
		publish(t, n2.broker, "room", text(name+" joined"))
		expectText(t, ctx, sub, name+" joined")
		if got := n1.broker.Members("room"); !slices.Contains(got, name) {
			t.Fatalf("node 1 delivered %q's join notice before recording the join: Members = %q", name, got)
		}
		leave()
	}
	select {
	case c := <-appeared:
		t.Fatalf("OnNodeAppeared(%q, %q) again for a node already known", c.topic, c.members)
	default:
	}
}

// Goroutines publishing on one node at once: node 2 sees node 1's
// messages in the order node 1's own subscribers see them (order holds per
// publishing node, whatever goroutine publishes).
func TestConcurrentPublishersKeepNodeOrder(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	const publishers, n = 8, 400 // n per publisher
	hubOpts := &broadcast.Options{QueueSize: 2 * publishers * n}
	n1, n2 := startNode(t, srv.URL(), nil, hubOpts), startNode(t, srv.URL(), nil, hubOpts)
	n1.flush(t)
	n2.flush(t)
	local, remote := n1.subscribe(t, ctx, "room", nil), n2.subscribe(t, ctx, "room", nil)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range n {
				if err := n1.broker.PublishTo("room", text(strconv.Itoa(p)+"-"+strconv.Itoa(i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	seqs := make([][]string, 2)
	for i, c := range []*wsconn.Conn{local, remote} {
		for range publishers * n {
			m, err := c.Receive(ctx)
			if err != nil {
				t.Fatalf("node %d: Receive after %d messages: %v", i+1, len(seqs[i]), err)
			}
			seqs[i] = append(seqs[i], string(m.Data))
		}
	}
	differ := 0
	for i := range seqs[0] {
		if seqs[0][i] != seqs[1][i] {
			differ++
		}
	}
	if differ > 0 {
		t.Fatalf("%d of %d positions differ between node 1's subscriber and node 2's", differ, publishers*n)
	}
	if st := n1.broker.Stats(); st.Dropped != 0 {
		t.Fatalf("node 1 Stats = %+v, want nothing dropped", st)
	}
}

// New rejects a prefix that is not a plain NATS subject and a presence
// expiry that one late heartbeat would reach.
func TestNewRejectsBadOptions(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := natsbroker.Dial(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hub := broadcast.NewHub(nil)
	for _, tc := range []struct {
		opts natsbroker.Options
		want string
	}{
		{natsbroker.Options{Prefix: "my app"}, "space"},
		{natsbroker.Options{Prefix: "app\t1"}, "space"},
		{natsbroker.Options{Prefix: "app.*"}, "wildcard"},
		{natsbroker.Options{Prefix: "app>"}, "wildcard"},
		{natsbroker.Options{Prefix: "app..x"}, "empty token"},
		{natsbroker.Options{Prefix: ".app"}, "empty token"},
		{natsbroker.Options{Prefix: "app."}, "empty token"},
		{natsbroker.Options{HeartbeatInterval: time.Second, PresenceExpiry: 1999 * time.Millisecond}, "PresenceExpiry"},
		{natsbroker.Options{PresenceExpiry: 3 * time.Second}, "PresenceExpiry"},    // default interval 2 s
		{natsbroker.Options{HeartbeatInterval: 6 * time.Second}, "PresenceExpiry"}, // default expiry 10 s
	} {
		b, err := natsbroker.New(hub, nc, &tc.opts)
		if err == nil {
			b.Close(context.Background())
			t.Errorf("New(%+v) succeeded, want an error about %s", tc.opts, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error about %s", tc.opts, err, tc.want)
		}
	}
	for _, opts := range []natsbroker.Options{
		{Prefix: "app.chat-1_x"},
		{HeartbeatInterval: time.Second, PresenceExpiry: 2 * time.Second},
	} {
		b, err := natsbroker.New(hub, nc, &opts)
		if err != nil {
			t.Fatalf("New(%+v) = %v", opts, err)
		}
		if err := b.Close(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// A node first heard of by a presence change (its hello missed, or its
// presence expired) is announced only with its whole presence, at its next
// heartbeat: OnNodeAppeared lists all its members, not just the change's.
func TestNodeAppearedWithWholePresence(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	type call struct {
		topic   string
		members []string
	}
	appeared := make(chan call, 4)
	n1 := startNode(t, srv.URL(), &natsbroker.Options{
		Prefix:         "app",
		OnNodeAppeared: func(topic string, members []string) { appeared <- call{topic, members} },
	}, nil)
	n1.flush(t)
	foreign, err := nats.Connect(srv.URL()) // plays a node whose hello node 1 missed
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	for _, p := range []string{
		`{"node":"x","kind":"change","topics":{"room":["bob"]}}`,
		`{"node":"x","kind":"beat","topics":{"room":["alice","bob"],"hall":["bob"]}}`,
	} {
		if err := foreign.Publish("app.presence", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := foreign.Flush(); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"room": {"alice", "bob"}, "hall": {"bob"}}
	for range len(want) {
		c := wstest.Recv(t, ctx, appeared)
		if !slices.Equal(c.members, want[c.topic]) {
			t.Fatalf("OnNodeAppeared(%q, %q), want the node's whole presence %q", c.topic, c.members, want)
		}
		delete(want, c.topic)
	}
}

// A node that falls behind what NATS delivers (here its subscription's
// goroutine is held in a callback while another node floods it past
// nats.go's pending limit of 64 MiB) loses the excess: counted in
// Stats.Dropped and logged, not silent.
func TestSlowConsumerDropsCounted(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	logs := newLogRecords()
	held, release := make(chan struct{}), make(chan struct{})
	n1 := startNode(t, srv.URL(), &natsbroker.Options{
		Prefix: "app",
		Logger: logs.logger(),
		OnNodeAppeared: func(string, []string) {
			close(held)
			<-release // holds the subscription's goroutine: what arrives now piles up
		},
	}, nil)
	n2 := startNode(t, srv.URL(), &natsbroker.Options{Prefix: "app"}, nil)
	n1.flush(t)
	n2.flush(t)
	foreign, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	if err := foreign.Publish("app.presence", []byte(`{"node":"x","kind":"beat","topics":{"room":["xavier"]}}`)); err != nil {
		t.Fatal(err)
	}
	wstest.Recv(t, ctx, held)
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	big := wsconn.Message{Type: wsconn.Binary, Data: make([]byte, 1000_000)}
	for range 80 { // 80 MB
		publish(t, n2.broker, "flood", big)
	}
	if err := n2.nc.FlushTimeout(testTimeout); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "node 1 to count the messages NATS dropped", func() bool { return n1.broker.Stats().Dropped > 0 })
	close(release)
	released = true
	if n := logs.count(slog.LevelWarn, "NATS dropped messages from the other nodes: this node did not keep up"); n == 0 {
		t.Fatal("no warning logged for the slow consumer")
	}
	if st := n2.broker.Stats(); st.Dropped != 0 {
		t.Fatalf("node 2 Stats = %+v, want nothing dropped on the sending side", st)
	}
}

// OnNodeGone and OnNodeAppeared are serialized, in the order of the
// changes: a node that comes back while its expiry is being reported is
// announced after the whole of its leaving, never in the middle of it.
func TestPresenceCallbacksInOrder(t *testing.T) {
	ctx := testCtx(t)
	srv := natstest.Start(t)
	foreign, err := nats.Connect(srv.URL()) // plays node x, which sends one heartbeat, then another from inside the first OnNodeGone
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	beat := func() {
		if err := foreign.Publish("app.presence", []byte(`{"node":"x","kind":"beat","topics":{"a":["bob"],"b":["bob"]}}`)); err != nil {
			t.Error(err)
		}
		if err := foreign.Flush(); err != nil {
			t.Error(err)
		}
	}
	events := make(chan string, 64)
	var inGone atomic.Bool
	var once sync.Once
	n1 := startNode(t, srv.URL(), &natsbroker.Options{
		Prefix:            "app",
		HeartbeatInterval: 50 * time.Millisecond,
		PresenceExpiry:    100 * time.Millisecond,
		OnNodeAppeared: func(topic string, members []string) {
			if inGone.Load() {
				t.Errorf("OnNodeAppeared(%q, %q) while OnNodeGone was running", topic, members)
			}
			events <- "appeared " + topic
		},
		OnNodeGone: func(topic string, gone []string) {
			inGone.Store(true)
			defer inGone.Store(false)
			events <- "gone " + topic
			once.Do(func() {
				// x is back while its leaving is being reported. Give node 1
				// time to hear it (there is nothing to wait on: a serialized
				// broker holds the heartbeat until this call returns).
				beat()
				time.Sleep(200 * time.Millisecond)
			})
		},
	}, nil)
	n1.flush(t)
	beat()
	want := []string{"appeared a", "appeared b", "gone a", "gone b", "appeared a", "appeared b"}
	for i, w := range want {
		if got := wstest.Recv(t, ctx, events); got != w {
			t.Fatalf("callback %d is %q, want %q (the sequence %q)", i, got, w, want)
		}
	}
}
