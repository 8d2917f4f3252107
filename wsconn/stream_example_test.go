package wsconn_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// exampleServer serves h on a free loopback port until stop is called.
func exampleServer(h wsconn.Handler, opts *wsconn.ServerOptions) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- wsconn.NewServer(h, opts).Serve(ctx, ln) }()
	return "ws://" + ln.Addr().String(), func() { cancel(); <-served }, nil
}

// A TCP tunnel: the WebSocket server relays each connection to a TCP
// service, and the client talks to that service through NetConn as if it
// had dialled it.
func ExampleNetConn() {
	// The TCP service behind the tunnel: it answers each line in capitals.
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer target.Close()
	go func() {
		for {
			conn, err := target.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				lines := bufio.NewScanner(conn)
				for lines.Scan() {
					fmt.Fprintln(conn, strings.ToUpper(lines.Text()))
				}
			}()
		}
	}()

	// The tunnel's WebSocket end: io.Copy both ways, until either side ends.
	url, stop, err := exampleServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		tcp, err := net.Dial("tcp", target.Addr().String())
		if err != nil {
			return err
		}
		defer tcp.Close()
		ws := wsconn.NetConn(ctx, c, wsconn.Binary)
		go func() { io.Copy(tcp, ws); tcp.Close() }()
		io.Copy(ws, tcp)
		return nil
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, url+"/tunnel", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	conn := wsconn.NetConn(ctx, c, wsconn.Binary)
	defer conn.Close() // closes the WebSocket with 1000
	fmt.Fprintln(conn, "hello through the tunnel")
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(reply)
	// Output:
	// HELLO THROUGH THE TUNNEL
}

// Streaming a file as one message, without reading it into memory.
func ExampleConn_Writer() {
	// The server reads the message as a stream and reports its size.
	url, stop, err := exampleServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		_, msg, err := c.Reader(ctx)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, msg)
		if err != nil {
			return err
		}
		return c.SendText(ctx, fmt.Sprintf("server got %d bytes", n))
	}, &wsconn.ServerOptions{MaxMessageSize: -1}) // streams of any size
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	// A 16 MiB file, for the example.
	f, err := os.CreateTemp("", "example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := f.Truncate(16 << 20); err != nil {
		fmt.Println(err)
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx, wsconn.StatusNormalClosure, "")
	w, err := c.Writer(ctx, wsconn.Binary)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := io.Copy(w, f); err != nil {
		fmt.Println(err)
		return
	}
	if err := w.Close(); err != nil { // sends the last fragment
		fmt.Println(err)
		return
	}
	m, err := c.Receive(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(m.Data))
	// Output:
	// server got 16777216 bytes
}

// Reading a message as a stream, here straight to standard output.
func ExampleConn_Reader() {
	url, stop, err := exampleServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		w, err := c.Writer(ctx, wsconn.Text)
		if err != nil {
			return err
		}
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "line %d\n", i)
		}
		if err := w.Close(); err != nil {
			return err
		}
		c.Receive(ctx) // until the client closes
		return nil
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx, wsconn.StatusNormalClosure, "")
	typ, msg, err := c.Reader(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(typ)
	if _, err := io.Copy(os.Stdout, msg); err != nil {
		fmt.Println(err)
	}
	// Output:
	// text
	// line 1
	// line 2
	// line 3
}

// A push-only server: it never reads, so CloseRead handles what the client
// sends (pings, the Close) and tells the server, through its context, when
// the client has gone.
func ExampleConn_CloseRead() {
	left := make(chan error, 1)
	url, stop, err := exampleServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		ctx = c.CloseRead(ctx)
		for i := 1; i <= 3; i++ {
			if err := c.SendText(ctx, fmt.Sprintf("update %d", i)); err != nil {
				return err
			}
		}
		<-ctx.Done() // a real server would go on pushing until then
		left <- context.Cause(ctx)
		return nil
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		m, err := c.Receive(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(m.Data))
	}
	if err := c.Ping(ctx, nil); err != nil { // answered under CloseRead
		fmt.Println(err)
		return
	}
	c.Close(ctx, wsconn.StatusNormalClosure, "bye")
	fmt.Println("server:", <-left)
	// Output:
	// update 1
	// update 2
	// update 3
	// server: websocket connection closed: 1000 (normal closure): "bye"
}
