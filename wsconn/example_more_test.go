package wsconn_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// serveExample runs h on a free loopback port, for the examples, and
// returns the server's ws:// URL and a function that stops it and waits
// for it to finish.
func serveExample(h wsconn.Handler, opts *wsconn.ServerOptions) (url string, stop func()) {
	var o wsconn.ServerOptions
	if opts != nil {
		o = *opts
	}
	addrs := make(chan net.Addr, 1)
	o.OnListen = func(a net.Addr) { addrs <- a }
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- wsconn.ListenAndServe(ctx, "127.0.0.1:0", h, &o) }()
	select {
	case a := <-addrs:
		return "ws://" + a.String(), func() { cancel(); <-served }
	case err := <-served:
		panic(err)
	}
}

// untilClosed is a handler, for the examples, that accepts and waits for
// the connection to close (answering pings meanwhile), then returns its
// close error: nothing more is sent.
func untilClosed(ctx context.Context, r *wsconn.Request) error {
	c, err := r.Accept(ctx, nil)
	if err != nil {
		return err
	}
	_, err = c.Receive(ctx)
	return err
}

// A Server is an http.Handler: mount it where WebSocket clients connect,
// next to ordinary pages.
func ExampleServer_ServeHTTP() {
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		return c.SendText(ctx, "hello from "+r.Path)
	}, nil)
	mux := http.NewServeMux()
	mux.Handle("/ws/", srv)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "an ordinary page") })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	// Your http.Server's settings protect the handshake: a header timeout
	// and a header size limit.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String()+"/ws/lobby", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if m, err := c.Receive(ctx); err == nil {
		fmt.Println(string(m.Data))
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Print(string(body))
	}
	http.DefaultClient.CloseIdleConnections()

	// http.Server.Shutdown ignores hijacked connections: shut the
	// WebSocket server down first.
	srv.Shutdown(ctx)
	hs.Shutdown(ctx)
	fmt.Println(<-served)
	// Output:
	// hello from /ws/lobby
	// an ordinary page
	// http: Server closed
}

// The client offers subprotocols in its order of preference; the handler
// picks one it speaks, which both sides then report.
func ExampleRequest_Accept() {
	picked := make(chan string, 1)
	url, stop := serveExample(func(ctx context.Context, r *wsconn.Request) error {
		var sub string
		for _, p := range r.Subprotocols {
			if slices.Contains([]string{"chat.v1", "chat.v2"}, p) {
				sub = p
				break
			}
		}
		c, err := r.Accept(ctx, &wsconn.AcceptOptions{Subprotocol: sub})
		if err != nil {
			return err
		}
		picked <- c.Subprotocol()
		_, err = c.Receive(ctx) // until the client closes
		return err
	}, nil)
	defer stop()

	ctx := context.Background()
	c, err := wsconn.Dial(ctx, url, &wsconn.DialOptions{Subprotocols: []string{"chat.v3", "chat.v2", "chat.v1"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("server picked", <-picked)
	fmt.Println("client sees", c.Subprotocol())
	c.Close(ctx, wsconn.StatusNormalClosure, "")
	// Output:
	// server picked chat.v2
	// client sees chat.v2
}

// A receive loop ends with the *ConnectionClosedError, after every message
// that arrived before the close.
func ExampleConn_Receive() {
	url, stop := serveExample(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		for _, s := range []string{"one", "two", "three"} {
			if err := c.SendText(ctx, s); err != nil {
				return err
			}
		}
		return nil // closes with 1000
	}, nil)
	defer stop()

	ctx := context.Background()
	c, err := wsconn.Dial(ctx, url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for {
		m, err := c.Receive(ctx)
		var closed *wsconn.ConnectionClosedError
		if errors.As(err, &closed) {
			fmt.Println("closed:", closed.Reason)
			break
		}
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(m.Type, string(m.Data))
	}
	// Output:
	// text one
	// text two
	// text three
	// closed: 1000 (normal closure)
}

// Ping waits for its pong; bound the wait with the context.
func ExampleConn_Ping() {
	url, stop := serveExample(untilClosed, nil)
	defer stop()

	ctx := context.Background()
	c, err := wsconn.Dial(ctx, url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx, wsconn.StatusNormalClosure, "")
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fmt.Println("ping answered:", c.Ping(pctx, []byte("are you there?")) == nil)
	// Output:
	// ping answered: true
}

// Close runs the closing handshake; CloseReason then holds the peer's
// echo.
func ExampleConn_Close() {
	url, stop := serveExample(untilClosed, nil)
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Close(ctx, 4000, "see you later"); err != nil {
		fmt.Println(err)
		return
	}
	reason, _ := c.CloseReason()
	fmt.Println(reason)
	fmt.Println(c.SendText(ctx, "too late"))
	// Output:
	// 4000 (private): "see you later"
	// websocket connection closed: 4000 (private): "see you later"
}

// A refused handshake is a *ConnectionRejectedError carrying the status,
// headers and (the first 1 KiB of the) body; here a server at its
// MaxConnections.
func ExampleConnectionRejectedError() {
	url, stop := serveExample(untilClosed, &wsconn.ServerOptions{MaxConnections: 1, Logger: slog.New(slog.DiscardHandler)})
	defer stop()

	ctx := context.Background()
	first, err := wsconn.Dial(ctx, url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer first.Close(ctx, wsconn.StatusNormalClosure, "")

	_, err = wsconn.Dial(ctx, url, nil)
	var rejected *wsconn.ConnectionRejectedError
	if errors.As(err, &rejected) {
		fmt.Printf("HTTP %d, Retry-After %s s: %s", rejected.StatusCode, rejected.Header.Get("Retry-After"), rejected.Body)
	}
	fmt.Println("errors.Is(err, wsconn.ErrHandshake):", errors.Is(err, wsconn.ErrHandshake))
	// Output:
	// HTTP 503, Retry-After 5 s: too many connections
	// errors.Is(err, wsconn.ErrHandshake): true
}

// Shutdown closes every connection with 1001 (going away) and waits for
// the handlers.
func ExampleServer_Shutdown() {
	srv := wsconn.NewServer(untilClosed, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("Shutdown:", srv.Shutdown(ctx))
	_, err = c.Receive(ctx)
	fmt.Println(err)
	fmt.Println("Serve:", <-served)
	// Output:
	// Shutdown: <nil>
	// websocket connection closed: 1001 (going away): "server shutting down"
	// Serve: <nil>
}

// With a nil Logger the server reports failures through slog.Default();
// a Logger of your own chooses where and what. Here, refused handshakes
// (Warn) on stdout, without the time and the client's port.
func ExampleServerOptions_logging() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "remote" {
				return slog.Attr{}
			}
			return a
		},
	}))
	url, stop := serveExample(func(ctx context.Context, r *wsconn.Request) error {
		_, err := r.Accept(ctx, nil)
		return err
	}, &wsconn.ServerOptions{Logger: logger})
	defer stop()

	// A plain HTTP request is not a WebSocket handshake.
	resp, err := http.Get("http" + url[len("ws"):] + "/feed")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	fmt.Println(resp.Status)
	// Output:
	// level=WARN msg="websocket handshake refused" status=400 reason="expected a websocket upgrade request" path=/feed
	// 400 Bad Request
}

// Send takes a Message; SendText and SendBinary are the shorthands. The
// echo server sends each back as it came.
func ExampleConn_Send() {
	url, stop := serveExample(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				return err
			}
			if err := c.Send(ctx, m); err != nil {
				return err
			}
		}
	}, nil)
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx, wsconn.StatusNormalClosure, "")
	for _, send := range []func() error{
		func() error { return c.Send(ctx, wsconn.Message{Type: wsconn.Text, Data: []byte("a message")}) },
		func() error { return c.SendText(ctx, "some text") },
		func() error { return c.SendBinary(ctx, []byte{0xca, 0xfe}) },
	} {
		if err := send(); err != nil {
			fmt.Println(err)
			return
		}
		m, err := c.Receive(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%v %q\n", m.Type, m.Data)
	}
	fmt.Println(c.SendText(ctx, "\xff"))
	// Output:
	// text "a message"
	// text "some text"
	// binary "\xca\xfe"
	// failed to send message: text is not valid UTF-8
}

// An unsolicited pong is a one-way heartbeat: the peer observes it (here
// with AcceptOptions.OnPong) and answers nothing.
func ExampleConn_Pong() {
	pongs := make(chan string, 1)
	url, stop := serveExample(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, &wsconn.AcceptOptions{OnPong: func(p []byte) { pongs <- string(p) }})
		if err != nil {
			return err
		}
		_, err = c.Receive(ctx)
		return err
	}, nil)
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx, wsconn.StatusNormalClosure, "")
	if err := c.Pong(ctx, []byte("still here")); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("the server saw a pong:", <-pongs)
	// Output:
	// the server saw a pong: still here
}

// With FailFast the first failing handler stops the server, and Serve
// returns its error: a *HandlerPanicError for a panic.
func ExampleServer_Serve() {
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		if _, err := r.Accept(ctx, nil); err != nil {
			return err
		}
		panic("out of cheese")
	}, &wsconn.ServerOptions{FailFast: true, Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = c.Receive(ctx)
	fmt.Println("client:", err)
	err = <-served
	var panicked *wsconn.HandlerPanicError
	if errors.As(err, &panicked) {
		fmt.Println("Serve: the handler panicked with", panicked.Value)
	}
	// Output:
	// client: websocket connection closed: 1011 (internal error): "internal error"
	// Serve: the handler panicked with out of cheese
}
