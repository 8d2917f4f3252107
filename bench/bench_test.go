// Benchmarks of wsconn against raw gorilla/websocket, coder/websocket,
// lxzan/gws and raw TCP. The server of every library runs in a separate
// process (this binary, re-executed); sub-benchmarks put the libraries side
// by side at each size so that they run close together in time. For one
// table with ratios, run `go run ./cmd/compare` instead.
package bench_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
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

var sizes = []struct {
	name string
	n    int
}{{"16B", 16}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

// server is a server process for one top-level benchmark.
type server struct {
	p        *wsbench.ServerProc
	overhead uint64 // allocations of one Stats request
}

func startServer(b *testing.B) *server {
	b.Helper()
	// WSBENCH_SERVER_CPUPROFILE and WSBENCH_SERVER_MEMPROFILE in the
	// environment make the server process write profiles.
	p, err := wsbench.StartServer()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Stop() })
	s := &server{p: p}
	s.overhead = ^uint64(0)
	for range 3 {
		m0 := s.mallocs(b)
		s.overhead = min(s.overhead, s.mallocs(b)-m0)
	}
	return s
}

func (s *server) mallocs(b *testing.B) uint64 {
	b.Helper()
	st, err := s.p.Stats(context.Background(), false)
	if err != nil {
		b.Fatal(err)
	}
	return st.Mallocs
}

// reportServerAllocs reports the server's allocations per op since m0.
func (s *server) reportServerAllocs(b *testing.B, m0 uint64) {
	m1 := s.mallocs(b)
	b.ReportMetric(max(0, float64(m1-m0)-float64(s.overhead))/float64(b.N), "srv-allocs/op")
}

func dial(b *testing.B, ctx context.Context, s *server, lib wsbench.Lib, path string, reader bool) wsbench.Client {
	b.Helper()
	c, err := wsbench.Dial(ctx, lib, wsbench.DialConfig{Addr: s.p.Addrs[lib.Name], Path: path, Reader: reader})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

func reportLatency(b *testing.B, lat []time.Duration) {
	sorted := append([]time.Duration(nil), lat...)
	slices.Sort(sorted)
	b.ReportMetric(float64(wsbench.Percentile(sorted, 0.50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(wsbench.Percentile(sorted, 0.99).Nanoseconds()), "p99-ns")
}

// BenchmarkEcho: one message out, its echo back, one at a time. allocs/op
// are the client's per round trip (one send, one receive), srv-allocs/op
// the server's.
func BenchmarkEcho(b *testing.B) {
	s := startServer(b)
	ctx := benchCtx(b)
	for _, size := range sizes {
		for _, lib := range wsbench.AllLibs() {
			b.Run(size.name+"/"+lib.Name, func(b *testing.B) {
				c := dial(b, ctx, s, lib, "/echo", false)
				p := wsbench.Payload(size.n)
				if err := wsbench.RoundTrips(ctx, c, p, make([]time.Duration, 100)); err != nil {
					b.Fatal(err)
				}
				lat := make([]time.Duration, b.N)
				b.ReportAllocs()
				m0 := s.mallocs(b)
				b.ResetTimer()
				if err := wsbench.RoundTrips(ctx, c, p, lat); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.reportServerAllocs(b, m0)
				reportLatency(b, lat)
			})
		}
	}
}

// BenchmarkPipelined: one goroutine sends b.N messages while another
// receives the echoes.
func BenchmarkPipelined(b *testing.B) {
	s := startServer(b)
	ctx := benchCtx(b)
	for _, size := range sizes {
		for _, lib := range wsbench.AllLibs() {
			b.Run(size.name+"/"+lib.Name, func(b *testing.B) {
				c := dial(b, ctx, s, lib, "/echo", false)
				p := wsbench.Payload(size.n)
				if _, err := wsbench.Pipeline(ctx, c, p, 100); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size.n))
				b.ReportAllocs()
				b.ResetTimer()
				elapsed, err := wsbench.Pipeline(ctx, c, p, b.N)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkPing: ping, wait for the pong; the client has a reader
// goroutine, as every library needs one to see pongs.
func BenchmarkPing(b *testing.B) {
	s := startServer(b)
	ctx := benchCtx(b)
	for _, lib := range wsbench.AllLibs() {
		if !lib.HasPing() {
			continue
		}
		b.Run(lib.Name, func(b *testing.B) {
			c := dial(b, ctx, s, lib, "/echo", true)
			if err := wsbench.Pings(ctx, c, make([]time.Duration, 100)); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			if err := wsbench.Pings(ctx, c, lat); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
}

// BenchmarkSend: the client only sends (to a sink). allocs/op are the
// client's per sent message, srv-allocs/op the server's per received one.
func BenchmarkSend(b *testing.B) {
	s := startServer(b)
	ctx := benchCtx(b)
	for _, size := range sizes {
		for _, lib := range wsbench.AllLibs() {
			b.Run(size.name+"/"+lib.Name, func(b *testing.B) {
				c := dial(b, ctx, s, lib, "/sink", false)
				p := wsbench.Payload(size.n)
				if err := wsbench.SinkRun(ctx, c, p, 100); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size.n))
				b.ReportAllocs()
				m0 := s.mallocs(b)
				b.ResetTimer()
				if err := wsbench.SinkRun(ctx, c, p, b.N); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.reportServerAllocs(b, m0)
			})
		}
	}
}

// BenchmarkReceive: the client only receives (from a source). allocs/op
// are the client's per received message, srv-allocs/op the server's per
// sent one.
func BenchmarkReceive(b *testing.B) {
	s := startServer(b)
	ctx := benchCtx(b)
	for _, size := range sizes {
		for _, lib := range wsbench.AllLibs() {
			b.Run(size.name+"/"+lib.Name, func(b *testing.B) {
				c := dial(b, ctx, s, lib, "/source", false)
				if err := wsbench.SourceRun(ctx, c, 100, size.n); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size.n))
				b.ReportAllocs()
				m0 := s.mallocs(b)
				b.ResetTimer()
				if err := wsbench.SourceRun(ctx, c, b.N, size.n); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.reportServerAllocs(b, m0)
			})
		}
	}
}

// idleCache keeps each measurement of a one-shot benchmark, which the
// testing package may call more than once.
var idleCache sync.Map

func measureIdleOnce(b *testing.B, lib wsbench.Lib, n int, hb, window time.Duration) wsbench.IdleResult {
	key := fmt.Sprint(lib.Name, n, hb, window)
	if r, ok := idleCache.Load(key); ok {
		return r.(wsbench.IdleResult)
	}
	limit, err := wsbench.RaiseFDLimit()
	if err != nil {
		b.Logf("open-file limit: %v", err)
	}
	if uint64(n)+1000 > limit {
		b.Skipf("open-file limit %d too low for %d connections", limit, n)
	}
	r, err := wsbench.MeasureIdle(benchCtx(b), lib, n, hb, window)
	if err != nil {
		b.Fatal(err)
	}
	idleCache.Store(key, r)
	return r
}

// BenchmarkIdle: n connections doing nothing (or only a heartbeat at 1 s),
// client and server each in a fresh process; per connection RSS and
// goroutines on each side. One measurement, whatever b.N.
func BenchmarkIdle(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, hb := range []time.Duration{0, time.Second} {
			for _, lib := range wsbench.Libs() {
				if hb > 0 && !lib.HasPing() {
					continue
				}
				name := fmt.Sprintf("conns=%d/heartbeat=%v/%s", n, hb, lib.Name)
				b.Run(name, func(b *testing.B) {
					r := measureIdleOnce(b, lib, n, hb, 0)
					b.ReportMetric(r.ClientBytes, "client-B/conn")
					b.ReportMetric(r.ServerBytes, "server-B/conn")
					b.ReportMetric(r.ClientGoroutines, "client-goroutines/conn")
					b.ReportMetric(r.ServerGoroutines, "server-goroutines/conn")
					b.ReportMetric(r.ClientStack, "client-stack-B/conn")
					b.ReportMetric(r.ServerStack, "server-stack-B/conn")
				})
			}
		}
	}
}

// BenchmarkHeartbeat10k: 10,000 connections pinging every second
// (wsconn through heartbeat.Run), measured over 10 s: ping latency and the
// CPU share of each process. One measurement, whatever b.N.
func BenchmarkHeartbeat10k(b *testing.B) {
	for _, lib := range wsbench.Libs() {
		if !lib.HasPing() {
			continue
		}
		b.Run(lib.Name, func(b *testing.B) {
			r := measureIdleOnce(b, lib, 10000, time.Second, 10*time.Second)
			b.ReportMetric(float64(r.PingP50.Nanoseconds()), "ping-p50-ns")
			b.ReportMetric(float64(r.PingP99.Nanoseconds()), "ping-p99-ns")
			b.ReportMetric(100*r.ClientCPU, "client-cpu-%")
			b.ReportMetric(100*r.ServerCPU, "server-cpu-%")
			b.ReportMetric(float64(r.PingFailures), "ping-failures")
		})
	}
}

// BenchmarkManyConns: 1,000 connections, each a closed loop of 16 B
// echoes on its own goroutine, measured over 1 s: round trips per second
// and CPU (user + system, both processes) per round trip. One measurement,
// whatever b.N.
func BenchmarkManyConns(b *testing.B) {
	s := startServer(b)
	for _, lib := range wsbench.Libs() {
		b.Run(lib.Name, func(b *testing.B) {
			r, err := wsbench.ManyEcho(benchCtx(b), s.p, lib, 1000, 16, 250*time.Millisecond, time.Second)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.Rate(), "msgs/s")
			b.ReportMetric(float64(r.CPUPerMsg().Nanoseconds()), "cpu-ns/msg")
		})
	}
}

// BenchmarkFanout: one publish to 10,000 subscribers, through
// recipes/broadcast (fanout-broadcast) and through a hub written as
// gorilla's chat example is (fanout-chat): time until the last subscriber
// has it, and deliveries per second with a few publishes in flight. One
// measurement, whatever b.N.
func BenchmarkFanout(b *testing.B) {
	limit, err := wsbench.RaiseFDLimit()
	if err != nil {
		b.Logf("open-file limit: %v", err)
	}
	const subs = 10000
	if limit < subs+1000 {
		b.Skipf("open-file limit %d too low for %d subscribers", limit, subs)
	}
	s := startServer(b)
	for _, hub := range wsbench.FanoutHubs() {
		b.Run(hub, func(b *testing.B) {
			r, err := wsbench.Fanout(benchCtx(b), s.p, hub, subs, 30, 2*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(wsbench.Percentile(r.Latency, 0.5).Nanoseconds()), "last-p50-ns")
			b.ReportMetric(float64(wsbench.Percentile(r.Latency, 0.99).Nanoseconds()), "last-p99-ns")
			b.ReportMetric(r.Rate(), "deliveries/s")
		})
	}
}
