// Command demo is a two-second tour of wsnursery that needs nothing but Go:
//
//	go run ./examples/demo
//
// It starts an echo server inside the process, on a free port of 127.0.0.1,
// and connects to it with [wsconn.Open]. The client runs three tasks in a
// [nursery]:
//
//   - a heartbeat ([heartbeat.Run]) that pings the server every
//     300ms and gives each pong 500ms to arrive, printing round-trip times;
//   - a producer that sends a message every 200ms;
//   - a reader that prints the echoes.
//
// After a few messages the producer sends "stall", and the server's
// handler stops reading. A wsconn connection answers pings from its
// background reader, which keeps going while its queue of received messages
// has room; once the next messages fill that queue the reader stops, and so
// do the pongs. The heartbeat's next ping goes unanswered, and after 500ms it
// fails with [heartbeat.ErrTooSlow]. That first failure cancels the nursery:
// the reader and the producer see their context cancelled, with the
// heartbeat's error as [context.Cause], and return. Open then closes the
// connection by wsconn's scoping rule — fn failed, so with 1011 (internal
// error) — without waiting for the unresponsive server to answer the
// closing handshake, and returns that same error.
//
// Every line of output starts with the time since the start, e.g. [+0.412s],
// and the name of the part of the program that printed it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/wsnursery/wsnursery/heartbeat"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/wsconn"
)

// The demo's timing.
const (
	pingTimeout  = 500 * time.Millisecond
	pingInterval = 300 * time.Millisecond
	sendInterval = 200 * time.Millisecond
	stallAfter   = 4 // messages echoed before the producer asks the server to stall
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run plays the demo, writing its story to out. It returns nil when the
// story ends as it should: with the heartbeat detecting the stalled server.
func run(ctx context.Context, out io.Writer) error {
	d := &demo{out: out, start: time.Now()}
	d.say("demo", "an echo server and a client in one process; the client's heartbeat will catch the server stalling")
	err := nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
		// Start the server and learn its address before dialing it. It keeps
		// running in the nursery until the end.
		url, err := nursery.Start(n, d.serve)
		if err != nil {
			return err
		}
		if err := d.client(ctx, url); err != nil {
			return err
		}
		d.say("demo", "stopping the server")
		n.Cancel(nil)
		return nil
	})
	if err != nil {
		return err
	}
	d.say("demo", "done")
	return nil
}

type demo struct {
	out   io.Writer
	start time.Time
	mu    sync.Mutex
}

// say prints one line: elapsed time, who speaks, what happened.
func (d *demo) say(who, format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	elapsed := time.Since(d.start).Seconds()
	fmt.Fprintf(d.out, "[+%.3fs] %-9s %s\n", elapsed, who, fmt.Sprintf(format, args...))
}

// serve runs the echo server, reporting its URL through started once it
// listens (ServerOptions.OnListen tells the port ":0" picked).
func (d *demo) serve(ctx context.Context, started func(string)) error {
	err := wsconn.ListenAndServe(ctx, "127.0.0.1:0", d.handle, &wsconn.ServerOptions{
		DisconnectTimeout: time.Second,
		OnListen: func(addr net.Addr) {
			url := "ws://" + addr.String() + "/"
			d.say("server", "listening on %s", url)
			started(url)
		},
	})
	if errors.Is(err, context.Canceled) {
		return nil // the demo is over
	}
	return err
}

// handle echoes messages until it receives "stall"; then it stops reading.
func (d *demo) handle(ctx context.Context, r *wsconn.Request) error {
	c, err := r.Accept(ctx, nil)
	if err != nil {
		return err
	}
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return nil // the connection is over
		}
		if string(m.Data) == "stall" {
			d.say("server", `got "stall": the handler stops reading. The connection's queue (1 message) will fill up, its reader will block, and pings will go unanswered`)
			<-ctx.Done()
			d.say("server", "the shutdown ends the stalled handler; context.Cause(ctx) = %v", context.Cause(ctx))
			return nil
		}
		if err := c.Send(ctx, m); err != nil {
			return nil
		}
	}
}

// client connects and runs the heartbeat, the producer and the reader
// until the heartbeat gives up on the server.
func (d *demo) client(ctx context.Context, url string) error {
	opened := time.Now()
	var conn *wsconn.Conn
	err := wsconn.Open(ctx, url, nil, func(ctx context.Context, c *wsconn.Conn) error {
		conn = c
		d.say("client", "connected; starting a nursery with a heartbeat (ping every %v, pong due within %v), a producer and a reader", pingInterval, pingTimeout)
		return nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error { return d.heartbeat(ctx, c) })
			n.Go(func(ctx context.Context) error { return d.produce(ctx, c) })
			n.Go(func(ctx context.Context) error { return d.read(ctx, c) })
			return nil
		})
	})
	if !errors.Is(err, heartbeat.ErrTooSlow) {
		return fmt.Errorf("the client ended with %v, not heartbeat.ErrTooSlow", err)
	}
	d.say("client", "Open returned after %v: %v", time.Since(opened).Round(time.Millisecond), err)
	d.say("client", "errors.Is(err, heartbeat.ErrTooSlow) = %v", errors.Is(err, heartbeat.ErrTooSlow))
	select {
	case <-conn.Done():
		reason, _ := conn.CloseReason()
		d.say("client", "connection closed: Open sent close code %v and, since the server had stopped answering, did not wait for its reply", reason.Code)
	default:
		return errors.New("the connection is still open after Open returned")
	}
	return nil
}

func (d *demo) heartbeat(ctx context.Context, c *wsconn.Conn) error {
	err := heartbeat.Run(ctx, c, &heartbeat.Options{
		Timeout:  pingTimeout,
		Interval: pingInterval,
		OnRTT: func(rtt time.Duration) {
			d.say("heartbeat", "pong after %v", rtt.Round(time.Microsecond))
		},
	})
	if errors.Is(err, heartbeat.ErrTooSlow) {
		d.say("heartbeat", "FAILED: %v -> the nursery cancels the other tasks", err)
	}
	return err
}

// produce sends a message every sendInterval, and "stall" after the first
// few.
func (d *demo) produce(ctx context.Context, c *wsconn.Conn) error {
	tick := time.NewTicker(sendInterval)
	defer tick.Stop()
	for i, sent := 1, 0; ; sent++ {
		msg := "stall"
		if sent != stallAfter {
			msg = fmt.Sprintf("message %d", i)
			i++
		}
		d.say("producer", "sending %q", msg)
		if err := c.SendText(ctx, msg); err != nil {
			return d.stopped("producer", ctx, err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return d.stopped("producer", ctx, ctx.Err())
		}
	}
}

// read prints every message it receives.
func (d *demo) read(ctx context.Context, c *wsconn.Conn) error {
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return d.stopped("reader", ctx, err)
		}
		d.say("reader", "received %q", m.Data)
	}
}

// stopped reports why a task stops and returns err.
func (d *demo) stopped(who string, ctx context.Context, err error) error {
	if ctx.Err() != nil {
		d.say(who, "cancelled; context.Cause(ctx) = %v", context.Cause(ctx))
		return err
	}
	d.say(who, "stopped: %s", strings.TrimSpace(err.Error()))
	return err
}
