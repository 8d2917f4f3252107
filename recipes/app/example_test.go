package app_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/wsnursery/wsnursery/recipes/app"
	"github.com/wsnursery/wsnursery/wsconn"
)

// A client in callback style against an upper-casing echo server, with a
// heartbeat. Returning app.ErrStop ends the connection normally.
func Example() {
	shout := func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				return nil
			}
			if err := c.SendText(ctx, strings.ToUpper(string(m.Data))); err != nil {
				return nil
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- wsconn.NewServer(shout, nil).Serve(ctx, ln) }()
	defer func() { stop(); <-served }()

	words := []string{"hello", "callbacks"}
	a := &app.App{
		OnOpen: func(ctx context.Context, c *wsconn.Conn) error {
			fmt.Println("open")
			return c.SendText(ctx, words[0])
		},
		OnMessage: func(ctx context.Context, c *wsconn.Conn, m wsconn.Message) error {
			fmt.Println("message:", string(m.Data))
			if words = words[1:]; len(words) == 0 {
				return app.ErrStop
			}
			return c.SendText(ctx, words[0])
		},
		OnError: func(err error) { fmt.Println("error:", err) },
		OnClose: func(code wsconn.StatusCode, reason string) { fmt.Println("close:", code) },

		PingInterval: 30 * time.Second,
		PingTimeout:  10 * time.Second,
	}
	err = a.Run(ctx, "ws://"+ln.Addr().String()+"/")
	fmt.Println("Run:", err)
	// Output:
	// open
	// message: HELLO
	// message: CALLBACKS
	// close: 1000 (normal closure)
	// Run: <nil>
}

// A server in callback style that watches its clients' pings: the handler
// runs the App with ServeRequest, which accepts the connection so that
// OnPing sees them.
func ExampleApp_ServeRequest() {
	a := &app.App{
		OnPing:  func(payload []byte) { fmt.Printf("ping: %s\n", payload) },
		OnClose: func(code wsconn.StatusCode, reason string) { fmt.Println("close:", code) },
	}
	served := make(chan error, 1)
	handle := func(ctx context.Context, r *wsconn.Request) error {
		err := a.ServeRequest(ctx, r, nil)
		served <- err
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wsconn.NewServer(handle, nil).Serve(ctx, ln) }()
	defer func() { stop(); <-done }()

	// A client that pings twice, then closes.
	err = wsconn.Open(ctx, "ws://"+ln.Addr().String()+"/", nil, func(ctx context.Context, c *wsconn.Conn) error {
		for _, p := range []string{"are you there?", "still there?"} {
			if err := c.Ping(ctx, []byte(p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("Serve:", <-served)
	// Output:
	// ping: are you there?
	// ping: still there?
	// close: 1000 (normal closure)
	// Serve: <nil>
}
