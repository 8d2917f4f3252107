package reconnect_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/wsnursery/wsnursery/recipes/reconnect"
	"github.com/wsnursery/wsnursery/wsconn"
)

// A feed client that survives a server restart: the server sends one update
// per connection and then goes away (1001); the client reconnects until it
// has three updates.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	update := 0
	feed := func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		update++
		if err := c.SendText(ctx, fmt.Sprint("update ", update)); err != nil {
			return err
		}
		return c.Close(ctx, wsconn.StatusGoingAway, "restarting")
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- wsconn.NewServer(feed, nil).Serve(ctx, ln) }()
	defer func() { stop(); <-served }()

	got := 0
	err = reconnect.Run(ctx, "ws://"+ln.Addr().String()+"/feed", &reconnect.Options{
		InitialDelay: 10 * time.Millisecond,
		MaxAttempts:  5,
		OnConnect: func(c *wsconn.Conn, n int) {
			if n > 0 {
				fmt.Println("reconnected")
			}
		},
	}, func(ctx context.Context, c *wsconn.Conn) error {
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				return err // lost: reconnect
			}
			fmt.Println(string(m.Data))
			if got++; got == 3 {
				return nil // done: stop
			}
		}
	})
	fmt.Println("Run:", err)
	// Output:
	// update 1
	// reconnected
	// update 2
	// reconnected
	// update 3
	// Run: <nil>
}
