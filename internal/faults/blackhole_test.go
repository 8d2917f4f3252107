package faults_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/heartbeat"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/wsconn"
)

// TestBlackholeHeartbeat: when the path goes silent (no FIN, no RST), a
// heartbeat next to the reader in a nursery ends the scoped connection
// with ErrTooSlow on both sides after about the heartbeat timeout, not the
// 60 s disconnect timeout.
func TestBlackholeHeartbeat(t *testing.T) {
	const (
		timeout  = 500 * time.Millisecond
		interval = 100 * time.Millisecond
		messages = 50
		// bound is generous for a loaded machine under -race, and still far
		// below DefaultDisconnectTimeout.
		bound = timeout + interval + 3*time.Second
	)
	serverDone := make(chan result, 1)
	addr := startServer(t, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		var n int
		err = nursery.Run(ctx, func(ctx context.Context, nu *nursery.Nursery) error {
			nu.Go(func(ctx context.Context) error {
				return heartbeat.Run(ctx, c, &heartbeat.Options{Timeout: timeout, Interval: interval})
			})
			nu.Go(func(ctx context.Context) error {
				var err error
				n, err = echo(ctx, c)
				return err
			})
			return nil
		})
		serverDone <- result{n, err}
		return nil
	}, nil) // default DisconnectTimeout (60 s)
	proxy := startProxy(t, addr, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var blackholed time.Time
	err := wsconn.Open(ctx, "ws://"+proxy.Addr()+"/", nil, func(ctx context.Context, c *wsconn.Conn) error {
		return nursery.Run(ctx, func(ctx context.Context, nu *nursery.Nursery) error {
			nu.Go(func(ctx context.Context) error {
				return heartbeat.Run(ctx, c, &heartbeat.Options{Timeout: timeout, Interval: interval})
			})
			nu.Go(func(ctx context.Context) error {
				if err := roundTrips(ctx, c, messages); err != nil {
					return err
				}
				blackholed = time.Now()
				proxy.Blackhole()
				m, err := c.Receive(ctx)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("Receive during the blackhole returned %d bytes, %v", len(m.Data), err)
			})
			return nil
		})
	})
	clientTook := time.Since(blackholed)
	if !errors.Is(err, heartbeat.ErrTooSlow) {
		t.Fatalf("Open returned %v, want an error matching heartbeat.ErrTooSlow", err)
	}
	t.Logf("client: Open returned %v after %v", err, clientTook.Round(time.Millisecond))
	if clientTook > bound {
		t.Errorf("client took %v after the blackhole to end, want about the %v heartbeat timeout (at most %v)", clientTook, timeout, bound)
	}

	r := waitResult(t, serverDone, bound)
	serverTook := time.Since(blackholed)
	if !errors.Is(r.err, heartbeat.ErrTooSlow) {
		t.Errorf("server handler ended with %v, want heartbeat.ErrTooSlow", r.err)
	}
	if r.n != messages {
		t.Errorf("server echoed %d messages, want %d", r.n, messages)
	}
	t.Logf("server: handler ended with %v after %v", r.err, serverTook.Round(time.Millisecond))
	if serverTook > bound {
		t.Errorf("server took %v after the blackhole to end, want at most %v", serverTook, bound)
	}
}
