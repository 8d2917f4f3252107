package broadcast_test

import (
	"context"
	"fmt"
	"net"

	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/recipes/broadcast"
	"github.com/wsnursery/wsnursery/wsconn"
)

// A chat room: every message a client sends is published to every client,
// the sender included. A client whose queue of 64 overflows is disconnected
// with 1008.
func Example() {
	hub := broadcast.NewHub(&broadcast.Options{QueueSize: 64, Policy: broadcast.Disconnect})
	joined := make(chan struct{}, 2)
	chat := func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		sub := hub.Subscribe(c) // subscribed from here on
		joined <- struct{}{}
		return nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(sub.Serve) // this connection's writer
			for {
				m, err := c.Receive(ctx)
				if err != nil {
					return nil // closed: Serve returns too
				}
				if err := hub.Publish(m); err != nil {
					return err
				}
			}
		})
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- wsconn.NewServer(chat, nil).Serve(ctx, ln) }()
	defer func() { stop(); <-served }()

	url := "ws://" + ln.Addr().String() + "/chat"
	err = wsconn.Open(ctx, url, nil, func(ctx context.Context, alice *wsconn.Conn) error {
		<-joined
		return wsconn.Open(ctx, url, nil, func(ctx context.Context, bob *wsconn.Conn) error {
			<-joined
			if err := alice.SendText(ctx, "hello from alice"); err != nil {
				return err
			}
			for _, c := range []*wsconn.Conn{alice, bob} {
				m, err := c.Receive(ctx)
				if err != nil {
					return err
				}
				fmt.Printf("%s\n", m.Data)
			}
			return nil
		})
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// hello from alice
	// hello from alice
}

// Presence across a topic: who is in the room. A Hub records it for its own
// process; a cross-node broker for every node.
func ExampleHub_Join() {
	var b broadcast.Broker = broadcast.NewHub(nil)
	leaveAlice := b.Join("room", "alice")
	leaveBob := b.Join("room", "bob")
	fmt.Println(b.Members("room"))
	leaveAlice()
	fmt.Println(b.Members("room"))
	leaveBob()
	fmt.Println(len(b.Members("room")))
	// Output:
	// [alice bob]
	// [bob]
	// 0
}

// Two topics on one hub: a message published on one reaches only its own
// subscribers.
func ExampleHub_PublishTo() {
	hub := broadcast.NewHub(nil)
	fmt.Println(hub.PublishTo("room-1", wsconn.Message{Type: wsconn.Text, Data: []byte("hi")}))
	fmt.Println(hub.PublishTo("room-1", wsconn.Message{Type: wsconn.Text, Data: []byte{0xff}}))
	// Output:
	// <nil>
	// failed to publish: text is not valid UTF-8
}
