package faults_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/internal/faults"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/wsconn"
)

// TestLatencyAndBandwidth: through a slow, narrow path, pipelined messages
// arrive intact, in order, exactly once, and pings sent meanwhile are still
// answered with their own pongs.
func TestLatencyAndBandwidth(t *testing.T) {
	const (
		latency   = 30 * time.Millisecond
		bandwidth = 1 << 20 // bytes per second, each direction
		messages  = 300
		pings     = 5
	)
	total := 0
	for seq := range messages {
		total += len(message(seq))
	}
	addr, serverDone := startEchoServer(t)
	proxy := startProxy(t, addr, &faults.Options{Latency: latency, Bandwidth: bandwidth})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	var (
		took    time.Duration
		minRTT  = time.Hour
		conn    *wsconn.Conn
		pingErr error
	)
	err := wsconn.Open(ctx, "ws://"+proxy.Addr()+"/", nil, func(ctx context.Context, c *wsconn.Conn) error {
		conn = c
		start = time.Now()
		err := nursery.Run(ctx, func(ctx context.Context, nu *nursery.Nursery) error {
			nu.Go(func(ctx context.Context) error { // sender, not waiting for echoes
				for seq := range messages {
					if err := c.SendBinary(ctx, message(seq)); err != nil {
						return err
					}
				}
				return nil
			})
			nu.Go(func(ctx context.Context) error { // receiver
				for seq := range messages {
					m, err := c.Receive(ctx)
					if err != nil {
						return fmt.Errorf("after %d messages: %w", seq, err)
					}
					if err := checkMessage(m, seq); err != nil {
						return err
					}
				}
				return nil
			})
			nu.Go(func(ctx context.Context) error { // pinger, while data flows
				for i := range pings {
					pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					t0 := time.Now()
					err := c.Ping(pctx, fmt.Appendf(nil, "ping-%d", i))
					rtt := time.Since(t0)
					cancel()
					if err != nil {
						pingErr = fmt.Errorf("ping %d: %w", i, err)
						return pingErr
					}
					minRTT = min(minRTT, rtt)
				}
				return nil
			})
			return nil
		})
		took = time.Since(start)
		return err
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if r, _ := conn.CloseReason(); r.Code != wsconn.StatusNormalClosure {
		t.Errorf("CloseReason %v, want 1000", r)
	}
	r := waitResult(t, serverDone, 10*time.Second)
	if r.n != messages {
		t.Errorf("server echoed %d messages, want %d", r.n, messages)
	}
	if _, err := r.err.(*wsconn.ConnectionClosedError); !err {
		t.Errorf("server's echo loop ended with %v, want the client's close", r.err)
	}
	// The faults took effect: no pong sooner than a round trip, no
	// transfer faster than the bandwidth.
	if minRTT < 2*latency {
		t.Errorf("fastest ping round trip %v, shorter than twice the %v latency", minRTT, latency)
	}
	floor := time.Duration(total-16<<10) * time.Second / bandwidth
	if took < floor {
		t.Errorf("%d bytes each way took %v, faster than %d B/s allows (%v)", total, took, bandwidth, floor)
	}
	t.Logf("%d messages (%d bytes) echoed in %v; %d pings, fastest round trip %v",
		messages, total, took.Round(time.Millisecond), pings, minRTT.Round(time.Millisecond))
}
