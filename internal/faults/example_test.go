package faults_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/wsnursery/wsnursery/internal/faults"
	"github.com/wsnursery/wsnursery/wsconn"
)

// Put a proxy with 20 ms of latency between a client and an echo server,
// then reset the path.
func ExampleListen() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			for {
				m, err := c.Receive(ctx)
				if err != nil {
					return nil
				}
				c.Send(ctx, m)
			}
		}, nil).Serve(sctx, ln)
	}()
	defer func() { stop(); <-served }()

	proxy, err := faults.Listen(ln.Addr().String(), &faults.Options{Latency: 20 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	defer proxy.Close()

	c, err := wsconn.Dial(ctx, "ws://"+proxy.Addr()+"/", nil)
	if err != nil {
		panic(err)
	}
	c.SendText(ctx, "hello")
	m, _ := c.Receive(ctx)
	fmt.Println(string(m.Data))

	proxy.Reset()
	_, err = c.Receive(ctx)
	var ce *wsconn.ConnectionClosedError
	if errors.As(err, &ce) {
		fmt.Println(ce.Reason)
	}
	// Output:
	// hello
	// 1006 (abnormal closure)
}
