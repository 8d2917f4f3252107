package broadcast_test

import (
	"context"
	"slices"
	"testing"

	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/recipes/broadcast"
	"github.com/wsnursery/wsnursery/wsconn"
)

// Messages published on a topic reach that topic's subscribers only, and a
// connection subscribed to two topics gets both.
func TestTopicsAreSeparate(t *testing.T) {
	ctx := testCtx(t)
	hub := broadcast.NewHub(nil)
	subs := make(chan *broadcast.Subscriber, 4)
	topics := make(chan string, 4) // the topic of the next connection
	url := startServer(t, func(ctx context.Context, c *wsconn.Conn) error {
		s := hub.SubscribeTo(<-topics, c)
		subs <- s
		return s.Serve(ctx)
	})
	topics <- "red"
	red := wstest.Dial(t, ctx, url, nil)
	if s := recv(t, ctx, subs); s.Topic() != "red" {
		t.Fatalf("Topic() = %q, want red", s.Topic())
	}
	topics <- "blue"
	blue := wstest.Dial(t, ctx, url, nil)
	recv(t, ctx, subs)
	topics <- "" // the default topic
	def := wstest.Dial(t, ctx, url, nil)
	recv(t, ctx, subs)
	if got := hub.Stats().Subscribers; got != 3 {
		t.Fatalf("Subscribers = %d, want 3", got)
	}
	for _, p := range []struct{ topic, text string }{{"red", "r1"}, {"blue", "b1"}, {"", "d1"}, {"green", "nobody"}, {"red", "r2"}} {
		if err := hub.PublishTo(p.topic, text(p.text)); err != nil {
			t.Fatal(err)
		}
	}
	if err := hub.Publish(text("d2")); err != nil { // Publish is the default topic
		t.Fatal(err)
	}
	expectText(t, ctx, red, "r1")
	expectText(t, ctx, red, "r2")
	expectText(t, ctx, blue, "b1")
	expectText(t, ctx, def, "d1")
	expectText(t, ctx, def, "d2")
	// Nothing else is on its way: a marker published to all three comes next.
	for _, topic := range []string{"red", "blue", ""} {
		if err := hub.PublishTo(topic, text("end")); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*wsconn.Conn{red, blue, def} {
		expectText(t, ctx, c, "end")
	}
}

func TestPresence(t *testing.T) {
	var changes []string
	p := broadcast.NewPresence(func(topic string) { changes = append(changes, topic) })
	leaveA := p.Join("room", "alice")
	leaveB := p.Join("room", "bob")
	leaveA2 := p.Join("room", "alice") // a second tab: no change
	leaveC := p.Join("hall", "carol")
	if got := p.Members("room"); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("Members(room) = %q", got)
	}
	leaveA()
	leaveA() // idempotent: does not count as the second tab leaving
	if got := p.Members("room"); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("after one of alice's two leaves, Members(room) = %q", got)
	}
	leaveA2()
	leaveB()
	if got := p.Members("room"); len(got) != 0 {
		t.Fatalf("Members(room) = %q, want nobody", got)
	}
	if got := p.Topics(); len(got) != 1 || !slices.Equal(got["hall"], []string{"carol"}) {
		t.Fatalf("Topics() = %q, want only hall: carol", got)
	}
	leaveC()
	want := []string{"room", "room", "hall", "room", "room", "hall"}
	if !slices.Equal(changes, want) {
		t.Fatalf("onChange calls = %q, want %q", changes, want)
	}
}

// The hub is the in-process Broker: its presence is this process's.
func TestHubIsInProcessBroker(t *testing.T) {
	var b broadcast.Broker = broadcast.NewHub(nil)
	leave := b.Join("room", "alice")
	if got := b.Members("room"); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("Members = %q", got)
	}
	leave()
	if got := b.Members("room"); len(got) != 0 {
		t.Fatalf("Members = %q after leave", got)
	}
	if err := b.PublishTo("room", wsconn.Message{Type: wsconn.Text, Data: []byte{0xff}}); err == nil {
		t.Fatal("PublishTo accepted invalid UTF-8")
	}
}
