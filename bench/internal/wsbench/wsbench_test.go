package wsbench_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/bench/internal/wsbench"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if wsbench.RunRole() {
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// TestWorkloads runs every workload a few times against every library's
// in-process server, checking the harness itself.
func TestWorkloads(t *testing.T) {
	srv, err := wsbench.StartServers(wsbench.AllLibs())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, lib := range wsbench.AllLibs() {
		t.Run(lib.Name, func(t *testing.T) {
			addr := srv.Addrs[lib.Name]
			dial := func(path string, reader bool) wsbench.Client {
				t.Helper()
				c, err := wsbench.Dial(ctx, lib, wsbench.DialConfig{Addr: addr, Path: path, Reader: reader})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			for _, size := range []int{0, 16, 64 << 10} {
				p := wsbench.Payload(size)
				c := dial("/echo", false)
				if err := wsbench.RoundTrips(ctx, c, p, make([]time.Duration, 3)); err != nil {
					t.Fatalf("echo %d B: %v", size, err)
				}
				if _, err := wsbench.Pipeline(ctx, c, p, 50); err != nil {
					t.Fatalf("pipeline %d B: %v", size, err)
				}
				if n, _, err := wsbench.PipelineFor(ctx, c, p, 5*time.Millisecond); err != nil || n == 0 {
					t.Fatalf("pipeline for 5ms, %d B: %d messages, %v", size, n, err)
				}
				if err := wsbench.SinkRun(ctx, dial("/sink", false), p, 20); err != nil {
					t.Fatalf("sink %d B: %v", size, err)
				}
				if err := wsbench.SourceRun(ctx, dial("/source", false), 20, size); err != nil {
					t.Fatalf("source %d B: %v", size, err)
				}
			}
			c := dial("/echo", true)
			err := wsbench.Pings(ctx, c, make([]time.Duration, 3))
			if lib.HasPing() && err != nil {
				t.Fatalf("ping: %v", err)
			}
			if !lib.HasPing() && !errors.Is(err, wsbench.ErrUnsupported) {
				t.Fatalf("ping: got %v, want ErrUnsupported", err)
			}
			if err := wsbench.RoundTrips(ctx, c, wsbench.Payload(16), make([]time.Duration, 3)); err != nil {
				t.Fatalf("echo through the reader goroutine: %v", err)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := wsbench.Percentile(d, 0.5); got != 6 {
		t.Errorf("p50 = %v, want 6", got)
	}
	if got := wsbench.Percentile(d, 0.99); got != 10 {
		t.Errorf("p99 = %v, want 10", got)
	}
	if got := wsbench.Percentile(nil, 0.5); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
}

func TestLookupLibs(t *testing.T) {
	libs, err := wsbench.LookupLibs("gorilla, wsconn-q16")
	if err != nil || len(libs) != 2 || libs[1].QueueSize != 16 {
		t.Fatalf("LookupLibs = %v, %v", libs, err)
	}
	if _, err := wsbench.LookupLibs("nope"); err == nil {
		t.Fatal("LookupLibs(nope) succeeded")
	}
}

// TestMeasureIdle runs the idle measurement end to end, small: a server
// process and a client process (this test binary, re-executed).
func TestMeasureIdle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lib := wsbench.Libs()[1] // wsconn
	r, err := wsbench.MeasureIdle(ctx, lib, 10, 20*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.ClientGoroutines < 1 || r.ServerGoroutines < 1 {
		t.Errorf("goroutines per connection: client %v, server %v; want at least 1 each", r.ClientGoroutines, r.ServerGoroutines)
	}
	if r.Pings == 0 || r.PingFailures != 0 {
		t.Errorf("%d pings, %d failed; want some, none failed", r.Pings, r.PingFailures)
	}
	if r.PingP99 <= 0 || r.PingP99 < r.PingP50 {
		t.Errorf("ping p50 %v, p99 %v", r.PingP50, r.PingP99)
	}
}

// TestManyEcho runs the many-connection echo end to end, small, against a
// server process, for every library of the table.
func TestManyEcho(t *testing.T) {
	ctx, srv := serverProc(t)
	for _, lib := range wsbench.Libs() {
		r, err := wsbench.ManyEcho(ctx, srv, lib, 8, 16, 10*time.Millisecond, 50*time.Millisecond)
		if err != nil {
			t.Fatalf("%s: %v", lib.Name, err)
		}
		if r.Msgs <= 0 || r.Rate() <= 0 || r.ClientCPU <= 0 || r.CPUPerMsg() <= 0 {
			t.Errorf("%s: %+v", lib.Name, r)
		}
	}
}

// TestFanout runs the fan-out measurement end to end, small, for both hubs.
func TestFanout(t *testing.T) {
	ctx, srv := serverProc(t)
	for _, hub := range wsbench.FanoutHubs() {
		r, err := wsbench.Fanout(ctx, srv, hub, 20, 5, 50*time.Millisecond)
		if err != nil {
			t.Fatalf("%s: %v", hub, err)
		}
		if len(r.Latency) != 5 || r.Latency[0] <= 0 || r.Deliveries < 20 || r.Rate() <= 0 {
			t.Errorf("%s: %d latencies (first %v), %d deliveries, %.0f/s", hub, len(r.Latency), r.Latency, r.Deliveries, r.Rate())
		}
	}
}

// serverProc starts a server process for one test, stopped at its end, and
// a context bounding the test.
func serverProc(t *testing.T) (context.Context, *wsbench.ServerProc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	srv, err := wsbench.StartServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	return ctx, srv
}
