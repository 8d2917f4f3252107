package heartbeat_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/wsnursery/wsnursery/heartbeat"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/wsconn"
)

// errConnClosed stands in for the error a real connection returns once it
// is closed.
var errConnClosed = errors.New("connection closed")

// peer stands in for a WebSocket connection: it answers the first pongs
// pings at once, then either goes silent or reports the connection closed.
type peer struct {
	pongs  int
	closes bool
}

func (p *peer) Ping(ctx context.Context, payload []byte) error {
	if p.pongs > 0 {
		p.pongs--
		fmt.Println("pong")
		return nil
	}
	if p.closes {
		return errConnClosed
	}
	<-ctx.Done() // no pong ever comes
	return ctx.Err()
}

// The trio-websocket recipe in Go: the heartbeat runs in a nursery next to
// the connection's reader, inside wsconn.Open. Here the server answers three
// pings, then goes away (1001); the heartbeat and the reader see the close,
// the producer is cancelled with the close as cause, and Open reports it.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, stopServer := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
			pings := make(chan struct{}, 3)
			c, err := r.Accept(ctx, &wsconn.AcceptOptions{OnPing: func([]byte) { pings <- struct{}{} }})
			if err != nil {
				return err
			}
			for range 3 {
				<-pings
			}
			return c.Close(ctx, wsconn.StatusGoingAway, "restarting")
		}, nil).Serve(ctx, ln)
	}()
	defer func() { stopServer(); <-served }()

	var pongs atomic.Int32
	var producerCause error
	err = wsconn.Open(context.Background(), "ws://"+ln.Addr().String(), nil, func(ctx context.Context, c *wsconn.Conn) error {
		return nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error {
				return heartbeat.Run(ctx, c, &heartbeat.Options{
					Timeout:  time.Second,
					Interval: 10 * time.Millisecond,
					OnRTT:    func(time.Duration) { pongs.Add(1) },
				})
			})
			n.Go(func(ctx context.Context) error {
				for {
					if _, err := c.Receive(ctx); err != nil {
						return err
					}
				}
			})
			n.Go(func(ctx context.Context) error {
				<-ctx.Done() // producing messages, until cancelled
				producerCause = context.Cause(ctx)
				return ctx.Err()
			})
			return nil
		})
	})
	// The server closes after its third ping; a fourth may or may not
	// have been answered by then.
	fmt.Println("pongs before the close:", min(pongs.Load(), 3), "or more")
	fmt.Println("producer stopped:", producerCause)
	fmt.Println("Open:", err)
	// Output:
	// pongs before the close: 3 or more
	// producer stopped: websocket connection closed: 1001 (going away): "restarting"
	// Open: websocket connection closed: 1001 (going away): "restarting"
}

// The same recipe when the peer stops answering: the heartbeat fails with
// ErrTooSlow, which cancels the reader (a stand-in connection here).
func Example_tooSlow() {
	conn := &peer{pongs: 2}
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(func(ctx context.Context) error {
			return heartbeat.Run(ctx, conn, &heartbeat.Options{Timeout: 20 * time.Millisecond, Interval: 5 * time.Millisecond})
		})
		n.Go(func(ctx context.Context) error {
			<-ctx.Done() // reading messages, until cancelled
			fmt.Println("reader stopped:", context.Cause(ctx))
			return ctx.Err()
		})
		return nil
	})
	fmt.Println("too slow:", errors.Is(err, heartbeat.ErrTooSlow))
	// Output:
	// pong
	// pong
	// reader stopped: heartbeat: peer too slow to answer ping: no pong within 20ms
	// too slow: true
}

// When the connection fails, Run returns its error unchanged.
func ExampleRun() {
	conn := &peer{pongs: 3, closes: true}
	err := heartbeat.Run(context.Background(), conn, &heartbeat.Options{Timeout: time.Second, Interval: time.Millisecond})
	fmt.Println(err, err == errConnClosed)
	// Output:
	// pong
	// pong
	// pong
	// connection closed true
}

// Options names both durations, and can spread the pauses and report
// round-trip times.
func ExampleOptions() {
	conn := &peer{pongs: 3, closes: true}
	rounds := 0
	err := heartbeat.Run(context.Background(), conn, &heartbeat.Options{
		Timeout:  time.Second,
		Interval: time.Millisecond,
		Jitter:   0.2, // pause 0.8ms to 1.2ms
		OnRTT: func(rtt time.Duration) {
			rounds++ // a real program would record rtt in a metric
		},
	})
	fmt.Println(rounds, "round trips, then:", err)
	// Output:
	// pong
	// pong
	// pong
	// 3 round trips, then: connection closed
}
