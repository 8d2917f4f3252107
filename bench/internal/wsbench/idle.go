package wsbench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Environment of an idle client process.
const (
	idleLibEnv      = "WSBENCH_IDLE_LIB"
	idleAddrEnv     = "WSBENCH_IDLE_ADDR"
	idleCountEnv    = "WSBENCH_IDLE_COUNT"
	idleIntervalEnv = "WSBENCH_IDLE_INTERVAL"
	// IdleHeapDirEnv names a directory where MeasureIdle stores heap
	// profiles of both processes once the connections are open.
	IdleHeapDirEnv = "WSBENCH_IDLE_HEAPDIR"
)

// HeartbeatTimeout bounds each heartbeat ping.
const HeartbeatTimeout = 5 * time.Second

// IdleResult is what n idle connections cost, per connection, on each
// side, and with a heartbeat what it cost over a measuring window.
type IdleResult struct {
	Lib       string
	Conns     int
	Heartbeat time.Duration // 0: none

	ClientBytes, ServerBytes           float64 // RSS per connection
	ClientGoroutines, ServerGoroutines float64 // per connection
	ClientStack, ServerStack           float64 // goroutine stack bytes per connection
	ClientHeap, ServerHeap             float64 // in-use heap bytes per connection

	// With a heartbeat, over the window:
	ClientCPU, ServerCPU      float64 // share of one core
	PingP50, PingP99, PingMax time.Duration
	Pings, PingFailures       int
	LoadAvg                   float64 // the machine's 1-minute load average after the window
}

type idleConnected struct {
	Before, After Stats
	Conns         int
	Err           string
}

type idleWindow struct {
	CPU, Wall       time.Duration
	P50, P99, Max   time.Duration
	Pings, Failures int
}

// MeasureIdle opens n connections of lib from a fresh client process to a
// fresh server process and reports their cost. With heartbeat > 0 every
// connection pings at that interval, and window > 0 then measures CPU and
// ping latency for that long.
func MeasureIdle(ctx context.Context, lib Lib, n int, heartbeat, window time.Duration) (IdleResult, error) {
	res := IdleResult{Lib: lib.Name, Conns: n, Heartbeat: heartbeat}
	srv, err := StartServer()
	if err != nil {
		return res, err
	}
	defer srv.Stop()
	sBefore, err := srv.Stats(ctx, true)
	if err != nil {
		return res, err
	}
	cl, err := startChild(roleIdle,
		idleLibEnv+"="+lib.Name,
		idleAddrEnv+"="+srv.Addrs[lib.Name],
		idleCountEnv+"="+strconv.Itoa(n),
		idleIntervalEnv+"="+heartbeat.String())
	if err != nil {
		return res, err
	}
	defer cl.stop(10 * time.Second)
	var conn idleConnected
	if err := cl.readJSON(&conn, 3*time.Minute); err != nil {
		return res, err
	}
	if conn.Err != "" {
		return res, fmt.Errorf("idle client: %s", conn.Err)
	}
	sAfter, err := srv.Stats(ctx, true)
	if err != nil {
		return res, err
	}
	if dir := os.Getenv(IdleHeapDirEnv); dir != "" {
		name := fmt.Sprintf("%s/%s-%d-hb%v", dir, lib.Name, n, heartbeat)
		if err := srv.heapProfile(ctx, name+"-server.heap"); err != nil {
			return res, err
		}
	}
	fn := float64(n)
	res.ClientBytes = float64(conn.After.RSS-conn.Before.RSS) / fn
	res.ClientGoroutines = float64(conn.After.Goroutines-conn.Before.Goroutines) / fn
	res.ServerBytes = float64(sAfter.RSS-sBefore.RSS) / fn
	res.ServerGoroutines = float64(sAfter.Goroutines-sBefore.Goroutines) / fn
	res.ClientStack = (float64(conn.After.StackInuse) - float64(conn.Before.StackInuse)) / fn
	res.ServerStack = (float64(sAfter.StackInuse) - float64(sBefore.StackInuse)) / fn
	res.ClientHeap = (float64(conn.After.HeapInuse) - float64(conn.Before.HeapInuse)) / fn
	res.ServerHeap = (float64(sAfter.HeapInuse) - float64(sBefore.HeapInuse)) / fn
	if heartbeat <= 0 || window <= 0 {
		return res, nil
	}
	s0, err := srv.Stats(ctx, false)
	if err != nil {
		return res, err
	}
	if _, err := fmt.Fprintf(cl.stdin, "window %s\n", window); err != nil {
		return res, fmt.Errorf("failed to start the window: %w", err)
	}
	var w idleWindow
	if err := cl.readJSON(&w, window+time.Minute); err != nil {
		return res, err
	}
	s1, err := srv.Stats(ctx, false)
	if err != nil {
		return res, err
	}
	res.ClientCPU = float64(w.CPU) / float64(w.Wall)
	res.ServerCPU = float64(s1.CPU-s0.CPU) / float64(s1.At.Sub(s0.At))
	res.PingP50, res.PingP99, res.PingMax = w.P50, w.P99, w.Max
	res.Pings, res.PingFailures = w.Pings, w.Failures
	res.LoadAvg = LoadAvg()
	return res, nil
}

// latencies collects heartbeat ping times from many goroutines.
type latencies struct {
	mu       sync.Mutex
	on       bool
	lat      []time.Duration
	failures int
}

func (l *latencies) record(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.on {
		return
	}
	if err != nil {
		l.failures++
		return
	}
	l.lat = append(l.lat, d)
}

func (l *latencies) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.on, l.lat, l.failures = true, l.lat[:0], 0
}

func (l *latencies) stop() (lat []time.Duration, failures int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.on = false
	return slices.Clone(l.lat), l.failures
}

// idleMain is the idle client process.
func idleMain() error {
	RaiseFDLimit()
	lib, err := LookupLibs(os.Getenv(idleLibEnv))
	if err != nil || len(lib) != 1 {
		return fmt.Errorf("bad %s: %v", idleLibEnv, err)
	}
	n, err := strconv.Atoi(os.Getenv(idleCountEnv))
	if err != nil {
		return fmt.Errorf("bad %s: %w", idleCountEnv, err)
	}
	interval, err := time.ParseDuration(os.Getenv(idleIntervalEnv))
	if err != nil {
		return fmt.Errorf("bad %s: %w", idleIntervalEnv, err)
	}
	addr := os.Getenv(idleAddrEnv)
	out := json.NewEncoder(os.Stdout)

	before := ReadStats(true)
	ctx, cancel := context.WithTimeout(context.Background(), maxChildLife)
	defer cancel()
	clients, err := dialMany(ctx, lib[0], DialConfig{Addr: addr, Path: "/echo", Reader: true}, n)
	if err != nil {
		return out.Encode(idleConnected{Err: err.Error()})
	}
	rec := &latencies{}
	settle := 500 * time.Millisecond
	if interval > 0 {
		for _, c := range clients {
			go runHeartbeat(ctx, lib[0], c, interval, rec)
		}
		settle += 2 * interval
	}
	time.Sleep(settle)
	after := ReadStats(true)
	if dir := os.Getenv(IdleHeapDirEnv); dir != "" {
		f, err := os.Create(fmt.Sprintf("%s/%s-%d-hb%v-client.heap", dir, lib[0].Name, n, interval))
		if err != nil {
			return err
		}
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	if err := out.Encode(idleConnected{Before: before, After: after, Conns: n}); err != nil {
		return err
	}

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 2 || f[0] != "window" {
			continue
		}
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return err
		}
		rec.start()
		s0 := ReadStats(false)
		time.Sleep(d)
		s1 := ReadStats(false)
		lat, failures := rec.stop()
		slices.Sort(lat)
		w := idleWindow{CPU: s1.CPU - s0.CPU, Wall: s1.At.Sub(s0.At), Pings: len(lat), Failures: failures,
			P50: Percentile(lat, 0.50), P99: Percentile(lat, 0.99)}
		if len(lat) > 0 {
			w.Max = lat[len(lat)-1]
		}
		if err := out.Encode(w); err != nil {
			return err
		}
	}
	// Exit without closing: the kernel drops every connection at once.
	return nil
}

// dialMany opens n clients with a few dialers at a time.
func dialMany(ctx context.Context, lib Lib, cfg DialConfig, n int) ([]Client, error) {
	clients := make([]Client, n)
	errs := make(chan error, 1)
	var (
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				c, err := Dial(dctx, lib, cfg)
				cancel()
				if err != nil {
					select {
					case errs <- fmt.Errorf("connection %d: %w", i, err):
					default:
					}
					continue
				}
				clients[i] = c
			}
		})
	}
	for i := range n {
		select {
		case err := <-errs:
			close(next)
			wg.Wait()
			return nil, err
		case next <- i:
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return clients, nil
}

// runHeartbeat pings c every interval, starting at a random point of the
// first interval so that the connections do not ping in lockstep.
func runHeartbeat(ctx context.Context, lib Lib, c Client, interval time.Duration, rec *latencies) {
	t := time.NewTimer(rand.N(interval))
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return
	}
	runLibHeartbeat(ctx, lib, c, interval, rec)
}

// pingLoop is the heartbeat written for libraries without one: ping with a
// timeout, then wait for the interval.
func pingLoop(ctx context.Context, c Client, interval time.Duration, rec *latencies) {
	for {
		pctx, cancel := context.WithTimeout(ctx, HeartbeatTimeout)
		start := time.Now()
		err := c.Ping(pctx)
		cancel()
		rec.record(time.Since(start), err)
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}
