package heartbeat_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wsnursery/wsnursery/heartbeat"
	"github.com/wsnursery/wsnursery/nursery"
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

// The recipe: the heartbeat runs in a nursery next to the connection's
// reader. When the peer stops answering, the heartbeat fails, which cancels
// the reader, and Run returns the heartbeat's error.
func Example() {
	conn := &peer{pongs: 2}
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(func(ctx context.Context) error {
			return heartbeat.Run(ctx, conn, 20*time.Millisecond, 5*time.Millisecond)
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
	err := heartbeat.Run(context.Background(), conn, time.Second, time.Millisecond)
	fmt.Println(err, err == errConnClosed)
	// Output:
	// pong
	// pong
	// pong
	// connection closed true
}

func ExampleRunWithOptions() {
	conn := &peer{pongs: 3, closes: true}
	rounds := 0
	err := heartbeat.RunWithOptions(context.Background(), conn, &heartbeat.Options{
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
