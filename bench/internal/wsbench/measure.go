package wsbench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Payload returns size bytes of a fixed pattern.
func Payload(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}

// RoundTrips sends payload and waits for its echo n times, recording each
// round trip into lat (which must have room for n).
func RoundTrips(ctx context.Context, c Client, payload []byte, lat []time.Duration) error {
	for i := range lat {
		start := time.Now()
		if err := c.Send(ctx, payload); err != nil {
			return fmt.Errorf("failed to send: %w", err)
		}
		p, err := c.Recv(ctx)
		if err != nil {
			return fmt.Errorf("failed to receive: %w", err)
		}
		lat[i] = time.Since(start)
		if len(p) != len(payload) {
			return fmt.Errorf("echo of %d bytes came back as %d", len(payload), len(p))
		}
	}
	return nil
}

// RoundTripsFor runs RoundTrips in batches until d has passed and returns
// the sorted latencies.
func RoundTripsFor(ctx context.Context, c Client, payload []byte, d time.Duration) ([]time.Duration, error) {
	var all []time.Duration
	batch := make([]time.Duration, 64)
	for start := time.Now(); time.Since(start) < d; {
		if err := RoundTrips(ctx, c, payload, batch); err != nil {
			return nil, err
		}
		all = append(all, batch...)
	}
	slices.Sort(all)
	return all, nil
}

// Pings pings n times, recording each ping→pong time into lat.
func Pings(ctx context.Context, c Client, lat []time.Duration) error {
	for i := range lat {
		start := time.Now()
		if err := c.Ping(ctx); err != nil {
			return fmt.Errorf("failed to ping: %w", err)
		}
		lat[i] = time.Since(start)
	}
	return nil
}

// PingsFor pings until d has passed and returns the sorted latencies.
func PingsFor(ctx context.Context, c Client, d time.Duration) ([]time.Duration, error) {
	var all []time.Duration
	batch := make([]time.Duration, 64)
	for start := time.Now(); time.Since(start) < d; {
		if err := Pings(ctx, c, batch); err != nil {
			return nil, err
		}
		all = append(all, batch...)
	}
	slices.Sort(all)
	return all, nil
}

// Pipeline sends n copies of payload from one goroutine while the caller's
// goroutine receives the n echoes, and returns the time until the last
// echo arrived.
func Pipeline(ctx context.Context, c Client, payload []byte, n int) (time.Duration, error) {
	_, elapsed, err := pipeline(ctx, c, payload, func(i int) bool { return i < n })
	return elapsed, err
}

// PipelineFor sends copies of payload for d from one goroutine while the
// caller's goroutine receives the echoes, and returns how many made the
// round trip and how long they took.
func PipelineFor(ctx context.Context, c Client, payload []byte, d time.Duration) (int, time.Duration, error) {
	deadline := time.Now().Add(d)
	return pipeline(ctx, c, payload, func(i int) bool { return i < 16 || i&15 != 0 || time.Now().Before(deadline) })
}

// pipeline sends while more(i) holds for the i-th message. The reader only
// calls Recv for a message the writer has committed to send, so it never
// waits for one that will not come.
func pipeline(ctx context.Context, c Client, payload []byte, more func(i int) bool) (int, time.Duration, error) {
	var (
		sent     atomic.Int64
		finished = make(chan struct{})
		sendErr  error
		wg       sync.WaitGroup
	)
	start := time.Now()
	wg.Go(func() {
		defer close(finished)
		for i := 0; more(i); i++ {
			sent.Add(1)
			if err := c.Send(ctx, payload); err != nil {
				sendErr = err
				// Unblock the reader: its message will not come.
				c.Close()
				return
			}
		}
	})
	defer wg.Wait()
	received := int64(0)
	for {
		if received == sent.Load() {
			select {
			case <-finished:
				if received == sent.Load() {
					if sendErr != nil {
						return int(received), 0, fmt.Errorf("failed to send: %w", sendErr)
					}
					return int(received), time.Since(start), nil
				}
			default:
				runtime.Gosched()
			}
			continue
		}
		p, err := c.Recv(ctx)
		if err != nil {
			wg.Wait()
			if sendErr != nil {
				return int(received), 0, fmt.Errorf("failed to send: %w", sendErr)
			}
			return int(received), 0, fmt.Errorf("failed to receive: %w", err)
		}
		if len(p) != len(payload) {
			c.Close()
			return int(received), 0, fmt.Errorf("echo of %d bytes came back as %d", len(payload), len(p))
		}
		received++
	}
}

// SinkRun sends n copies of payload to a /sink server, then an empty
// message, and waits for the empty answer, so that all n have arrived.
func SinkRun(ctx context.Context, c Client, payload []byte, n int) error {
	for range n {
		if err := c.Send(ctx, payload); err != nil {
			return fmt.Errorf("failed to send: %w", err)
		}
	}
	if err := c.Send(ctx, nil); err != nil {
		return fmt.Errorf("failed to send: %w", err)
	}
	p, err := c.Recv(ctx)
	if err != nil {
		return fmt.Errorf("failed to receive: %w", err)
	}
	if len(p) != 0 {
		return fmt.Errorf("sink answered %d bytes, want 0", len(p))
	}
	return nil
}

// SourceRun asks a /source server for n messages of size bytes and
// receives them.
func SourceRun(ctx context.Context, c Client, n, size int) error {
	if err := c.Send(ctx, SourceRequest(n, size)); err != nil {
		return fmt.Errorf("failed to send: %w", err)
	}
	for range n {
		p, err := c.Recv(ctx)
		if err != nil {
			return fmt.Errorf("failed to receive: %w", err)
		}
		if len(p) != size {
			return fmt.Errorf("source sent %d bytes, want %d", len(p), size)
		}
	}
	return nil
}

// Mallocs returns this process's cumulative heap allocation count.
func Mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// Percentile returns the p-th percentile (0..1) of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)))
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}
