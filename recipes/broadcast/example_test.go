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
