package wsconn_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/wsconn"
)

func ExampleDial() {
	// An echo server on a free loopback port, for the example.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				return nil // the client left
			}
			if err := c.Send(ctx, m); err != nil {
				return nil
			}
		}
	}, nil)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { stop(); <-served }()

	// ctx bounds the opening handshake only; the connection outlives it.
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(dctx, "ws://"+ln.Addr().String()+"/echo", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.SendText(ctx, "hello"); err != nil {
		fmt.Println(err)
		return
	}
	m, err := c.Receive(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Type, string(m.Data))

	if err := c.Close(ctx, wsconn.StatusNormalClosure, "done"); err != nil {
		fmt.Println(err)
		return
	}
	reason, _ := c.CloseReason()
	fmt.Println(reason)
	// Output:
	// text hello
	// 1000 (normal closure): "done"
}

func ExampleOpen() {
	// A server that greets each client and hangs up, for the example.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		return c.SendText(ctx, "welcome to "+r.Path) // then closed with 1000
	}, nil)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { stop(); <-served }()

	err = wsconn.Open(ctx, "ws://"+ln.Addr().String()+"/lobby", nil, func(ctx context.Context, c *wsconn.Conn) error {
		m, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		fmt.Println(string(m.Data))
		// ctx ends when the connection closes; the cause says why.
		<-ctx.Done()
		fmt.Println(context.Cause(ctx))
		return nil
	})
	fmt.Println("Open returned", err)
	// Output:
	// welcome to /lobby
	// websocket connection closed: 1000 (normal closure)
	// Open returned <nil>
}

func ExampleConn_Scope() {
	// A server that reports the close code each client sends, for the
	// example.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	codes := make(chan wsconn.CloseReason, 1)
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		_, err = c.Receive(ctx)
		var closed *wsconn.ConnectionClosedError
		if errors.As(err, &closed) {
			codes <- closed.Reason
		}
		return err
	}, nil)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { stop(); <-served }()

	c, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The connection lives as long as the function; its error decides the
	// close code (1011 here) and comes back itself.
	errNoRoom := errors.New("no such room")
	err = c.Scope(ctx, func(ctx context.Context) error {
		return errNoRoom
	})
	fmt.Println("Scope returned:", err)
	fmt.Println("the server got:", <-codes)
	// Output:
	// Scope returned: no such room
	// the server got: 1011 (internal error): "internal error"
}

func ExampleNewServer() {
	// The handler decides each handshake, then uses the connection until
	// it returns; the connection is closed with 1000 when it returns nil.
	chat := func(ctx context.Context, r *wsconn.Request) error {
		if !slices.Contains(r.Subprotocols, "chat.v1") {
			return r.Reject(ctx, http.StatusBadRequest, nil, []byte("speak chat.v1"))
		}
		c, err := r.Accept(ctx, &wsconn.AcceptOptions{Subprotocol: "chat.v1"})
		if err != nil {
			return err
		}
		m, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		return c.SendText(ctx, "you said: "+string(m.Data))
	}
	srv := wsconn.NewServer(chat, &wsconn.ServerOptions{ConnectTimeout: 10 * time.Second})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String()+"/room/1", &wsconn.DialOptions{Subprotocols: []string{"chat.v1"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("subprotocol:", c.Subprotocol())
	if err := c.SendText(ctx, "hi"); err != nil {
		fmt.Println(err)
		return
	}
	m, err := c.Receive(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(m.Data))
	_, err = c.Receive(ctx)
	fmt.Println(err)

	// Shutdown closes what is left with 1001 and waits for the handlers.
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("Serve returned", <-served)
	// Output:
	// subprotocol: chat.v1
	// you said: hi
	// websocket connection closed: 1000 (normal closure)
	// Serve returned <nil>
}

func ExampleRequest_Reject() {
	// A server that wants a bearer token, for the example.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		if r.Header.Get("Authorization") != "Bearer letmein" {
			return r.Reject(ctx, http.StatusUnauthorized,
				http.Header{"Www-Authenticate": {`Bearer realm="chat"`}},
				[]byte("a token is required"))
		}
		_, err := r.Accept(ctx, nil)
		return err
	}, nil)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { stop(); <-served }()
	url := "ws://" + ln.Addr().String()

	_, err = wsconn.Dial(ctx, url, nil)
	var rejected *wsconn.ConnectionRejectedError
	if errors.As(err, &rejected) {
		fmt.Println(rejected.StatusCode, rejected.Header.Get("Www-Authenticate"), string(rejected.Body))
	}
	fmt.Println("is ErrHandshake:", errors.Is(err, wsconn.ErrHandshake))

	c, err := wsconn.Dial(ctx, url, &wsconn.DialOptions{Header: http.Header{"Authorization": {"Bearer letmein"}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("accepted")
	c.Close(ctx, wsconn.StatusNormalClosure, "")
	// Output:
	// 401 Bearer realm="chat" a token is required
	// is ErrHandshake: true
	// accepted
}

func ExampleListenAndServe() {
	greet := func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		return c.SendText(ctx, "hello from "+r.Path)
	}
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		// ":0" picks a free port; OnListen hands the address over, and has
		// the type nursery.Start's started function has.
		addr, err := nursery.Start(n, func(ctx context.Context, started func(net.Addr)) error {
			return wsconn.ListenAndServe(ctx, "127.0.0.1:0", greet, &wsconn.ServerOptions{OnListen: started})
		})
		if err != nil {
			return err
		}
		err = wsconn.Open(ctx, "ws://"+addr.String()+"/lobby", nil, func(ctx context.Context, c *wsconn.Conn) error {
			m, err := c.Receive(ctx)
			if err != nil {
				return err
			}
			fmt.Println(string(m.Data))
			return nil
		})
		n.Cancel(nil) // stops the server
		return err
	})
	fmt.Println("done:", err)
	// Output:
	// hello from /lobby
	// done: <nil>
}
