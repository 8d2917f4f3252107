package wsconn_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// Compression on both sides: the server accepts the client's
// permessage-deflate offer, and messages of 512 bytes or more (the default
// CompressionThreshold) travel deflated.
func ExampleCompressionMode() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil) // the ServerOptions' compression applies
		if err != nil {
			return err
		}
		m, err := c.Receive(ctx)
		if err != nil {
			return nil
		}
		return c.Send(ctx, m)
	}, &wsconn.ServerOptions{Compression: wsconn.CompressionNoContextTakeover})
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { stop(); <-served }()

	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(dctx, "ws://"+ln.Addr().String()+"/", &wsconn.DialOptions{
		Compression: wsconn.CompressionNoContextTakeover,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx, wsconn.StatusNormalClosure, "")
	fmt.Println("negotiated:", c.Compression())
	if err := c.SendText(ctx, strings.Repeat(`{"status":"ok"},`, 1000)); err != nil {
		fmt.Println(err)
		return
	}
	m, err := c.Receive(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("echoed", len(m.Data), "bytes")
	// Output:
	// negotiated: no-context-takeover
	// echoed 16000 bytes
}
