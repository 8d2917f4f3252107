package wsbench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ManyResult is what n connections doing closed-loop echo achieved
// together over a measuring window.
type ManyResult struct {
	Lib     string
	Conns   int
	Msgs    int64         // round trips completed in the window
	Elapsed time.Duration // the window, measured
	// ClientCPU and ServerCPU are each process's user + system time in the
	// window (rusage), so CPU per message is (ClientCPU+ServerCPU)/Msgs.
	ClientCPU, ServerCPU time.Duration
}

// Rate is round trips per second.
func (r ManyResult) Rate() float64 { return float64(r.Msgs) / r.Elapsed.Seconds() }

// CPUPerMsg is the CPU time of both processes per round trip.
func (r ManyResult) CPUPerMsg() time.Duration {
	if r.Msgs == 0 {
		return 0
	}
	return (r.ClientCPU + r.ServerCPU) / time.Duration(r.Msgs)
}

// counter is a per-connection message count on its own cache line, so the
// connections do not contend on one.
type counter struct {
	n atomic.Int64
	_ [56]byte
}

// ManyEcho opens n connections of lib to the server process srv, each
// running a closed loop of size-byte echoes (send, wait for the echo, send
// again) on a goroutine of its own, and measures the total for window after
// a warm-up. The connections read in the caller's goroutine as in the echo
// figures (wsconn and gws through their own reader goroutine).
func ManyEcho(ctx context.Context, srv *ServerProc, lib Lib, n, size int, warmup, window time.Duration) (ManyResult, error) {
	res := ManyResult{Lib: lib.Name, Conns: n}
	clients, err := dialMany(ctx, lib, DialConfig{Addr: srv.Addrs[lib.Name], Path: "/echo"}, n)
	if err != nil {
		return res, err
	}
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	counts := make([]counter, n)
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	payload := Payload(size)
	for i, c := range clients {
		wg.Go(func() {
			for !stop.Load() {
				if err := c.Send(ctx, payload); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: failed to send: %w", i, err) })
					return
				}
				p, err := c.Recv(ctx)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: failed to receive: %w", i, err) })
					return
				}
				if len(p) != size {
					errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: echo of %d bytes came back as %d", i, size, len(p)) })
					return
				}
				counts[i].n.Add(1)
			}
		})
	}
	// The loops end once stop is set: every server echoes what it got, so
	// each goroutine's last Recv returns; if that takes too long, the
	// connections are dropped under them.
	defer func() {
		stop.Store(true)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		closeAll()
		<-done
	}()
	sum := func() int64 {
		var t int64
		for i := range counts {
			t += counts[i].n.Load()
		}
		return t
	}
	if !sleepCtx(ctx, warmup) {
		return res, ctx.Err()
	}
	s0, err := srv.Stats(ctx, false)
	if err != nil {
		return res, err
	}
	c0, m0 := cpuTime(), sum()
	t0 := time.Now()
	if !sleepCtx(ctx, window) {
		return res, ctx.Err()
	}
	m1, c1 := sum(), cpuTime()
	res.Elapsed = time.Since(t0)
	s1, err := srv.Stats(ctx, false)
	if err != nil {
		return res, err
	}
	res.Msgs = m1 - m0
	res.ClientCPU = c1 - c0
	// The server's figure covers the two Stats requests around the window
	// too; they cost microseconds against a window of seconds.
	res.ServerCPU = s1.CPU - s0.CPU
	errOnce.Do(func() {}) // firstErr is final from here on
	return res, firstErr
}

// sleepCtx sleeps for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
