// Command compare measures wsconn against raw gorilla/websocket,
// coder/websocket, lxzan/gws and raw TCP in one run and prints one markdown
// table: each figure for each library, with its ratio to gorilla measured
// in the same run, and whether wsconn meets its goal.
//
// Latency and throughput figures are taken in rounds; within a round every
// library runs once per figure, in a rotating order, and a ratio is the
// median over rounds of the library's figure over gorilla's in the same
// round, so that a noisy machine moves both sides of each ratio together.
// Servers run in a separate process, and idle connections in a fresh client
// and server process each, all on 127.0.0.1.
//
// Usage (inside bench/):
//
//	go run ./cmd/compare [-rounds 7] [-variants] [-idle 1000,10000] [-out table.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/wsnursery/wsnursery/bench/internal/wsbench"
)

type config struct {
	rounds   int
	echoDur  time.Duration
	pipeDur  time.Duration
	libs     []wsbench.Lib
	idle     []int
	window   time.Duration
	interval time.Duration
	hbMin    int
	out      string

	many       int
	manyRounds int
	manyWindow time.Duration
	fanout     int
	fanPubs    int
	fanWindow  time.Duration
	pinned     bool
	// samples makes the process print the samples of the single-connection
	// figures as JSON instead of a table (the pinned child).
	samples bool
}

func main() {
	if wsbench.RunRole() {
		return
	}
	var (
		cfg      config
		variants bool
		idle     string
		libs     string
	)
	flag.IntVar(&cfg.rounds, "rounds", 7, "rounds of the latency and throughput figures")
	flag.DurationVar(&cfg.echoDur, "echo", 150*time.Millisecond, "time per library per round for echo and ping")
	flag.DurationVar(&cfg.pipeDur, "pipe", 250*time.Millisecond, "time per library per round for pipelined throughput")
	flag.StringVar(&libs, "libs", "", "comma-separated libraries (default: gorilla,wsconn,coder,gws,tcp)")
	flag.BoolVar(&variants, "variants", false, "also measure wsconn variants (MessageQueueSize 16, Send without a cancellable ctx)")
	flag.StringVar(&idle, "idle", "1000,10000", "idle connection counts, comma-separated; empty for none")
	flag.DurationVar(&cfg.window, "window", 10*time.Second, "measuring window of the 10,000-connection heartbeat")
	flag.DurationVar(&cfg.interval, "interval", time.Second, "heartbeat interval")
	flag.IntVar(&cfg.hbMin, "hbconns", 10000, "measure heartbeat CPU and ping latency for idle counts at least this large")
	flag.StringVar(&cfg.out, "out", "", "also write the table to this file")
	flag.IntVar(&cfg.many, "many", 1000, "connections of the many-connection echo; 0 for none")
	flag.IntVar(&cfg.manyRounds, "manyrounds", 3, "rounds of the many-connection echo")
	flag.DurationVar(&cfg.manyWindow, "manywindow", time.Second, "measuring window of each many-connection round")
	flag.IntVar(&cfg.fanout, "fanout", 10000, "subscribers of the fan-out figures; 0 for none")
	flag.IntVar(&cfg.fanPubs, "fanpubs", 50, "single publishes timed in the fan-out figures")
	flag.DurationVar(&cfg.fanWindow, "fanwindow", 2*time.Second, "saturation window of the fan-out figures")
	flag.BoolVar(&cfg.pinned, "pinned", true, "also rerun the single-connection figures with both processes on CPU 0 (taskset -c 0)")
	flag.BoolVar(&cfg.samples, "samples", false, "print the single-connection samples as JSON (used by -pinned)")
	flag.Parse()

	cfg.libs = wsbench.Libs()
	if libs != "" {
		l, err := wsbench.LookupLibs(libs)
		if err != nil {
			fatal(err)
		}
		cfg.libs = l
	}
	if variants {
		cfg.libs = append(cfg.libs, wsbench.Variants()...)
	}
	if cfg.libs[0].Name != wsbench.Baseline {
		fatal(fmt.Errorf("the first library must be the baseline %s", wsbench.Baseline))
	}
	for f := range strings.SplitSeq(idle, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			fatal(fmt.Errorf("bad -idle: %w", err))
		}
		cfg.idle = append(cfg.idle, n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if cfg.samples {
		if err := printSamples(ctx, cfg); err != nil {
			fatal(err)
		}
		return
	}
	start := time.Now()
	before := uptime()
	t, err := run(ctx, cfg)
	if err != nil {
		fatal(err)
	}
	md := t.markdown(wsbench.Baseline, "wsconn")
	md += fmt.Sprintf("\nLoad average (1, 5, 15 min) before the run: %s; after: %s. %d CPUs, %s, %v.\n",
		before, uptime(), runtime.NumCPU(), runtime.Version(), time.Since(start).Round(time.Second))
	fmt.Print(md)
	progress("done in %v", time.Since(start).Round(time.Second))
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "compare: "+format+"\n", args...)
}

var sizes = []struct {
	name string
	n    int
}{{"16 B", 16}, {"1 KiB", 1 << 10}, {"64 KiB", 64 << 10}}

func run(ctx context.Context, cfg config) (*table, error) {
	names := make([]string, len(cfg.libs))
	for i, l := range cfg.libs {
		names[i] = l.Name
	}
	t := newTable(names)
	progress("%d CPUs, %s, load average %.2f; libraries %s", runtime.NumCPU(), runtime.Version(), wsbench.LoadAvg(), strings.Join(names, ", "))
	defer func() { progress("load average at the end: %.2f", wsbench.LoadAvg()) }()

	srv, err := wsbench.StartServer()
	if err != nil {
		return nil, err
	}
	defer srv.Stop()

	if err := runRounds(ctx, cfg, srv, t); err != nil {
		return nil, err
	}
	if cfg.pinned {
		if err := runPinned(ctx, cfg, t); err != nil {
			return nil, err
		}
	}
	if err := runAllocs(ctx, cfg, srv, t); err != nil {
		return nil, err
	}
	// A failure of these server-scale figures costs their rows, not the
	// table.
	if err := runMany(ctx, cfg, srv, t); err != nil {
		progress("many connections: %v", err)
	}
	if err := runFanout(ctx, cfg, srv, t); err != nil {
		progress("fan-out: %v", err)
	}
	if err := runIdle(ctx, cfg, t); err != nil {
		return nil, err
	}
	return t, nil
}

// clients keeps one client per library and workload across rounds.
type clients map[string]wsbench.Client

func (cs clients) get(ctx context.Context, srv *wsbench.ServerProc, lib wsbench.Lib, key string, reader bool) (wsbench.Client, error) {
	k := lib.Name + "/" + key
	if c, ok := cs[k]; ok {
		return c, nil
	}
	c, err := wsbench.Dial(ctx, lib, wsbench.DialConfig{Addr: srv.Addrs[lib.Name], Path: "/echo", Reader: reader})
	if err != nil {
		return nil, err
	}
	cs[k] = c
	return c, nil
}

func (cs clients) close() {
	for _, c := range cs {
		c.Close()
	}
}

// rotate returns libs starting at index r.
func rotate(libs []wsbench.Lib, r int) []wsbench.Lib {
	r %= len(libs)
	return append(append([]wsbench.Lib(nil), libs[r:]...), libs[:r]...)
}

func runRounds(ctx context.Context, cfg config, srv *wsbench.ServerProc, t *table) error {
	cs := clients{}
	defer cs.close()
	type echoFigs struct{ p50, p99, pipe *figure }
	figs := make([]echoFigs, len(sizes))
	for i, s := range sizes {
		figs[i].p50 = t.fig("echo round trip p50, "+s.name, fmtMicros)
		figs[i].p99 = t.fig("echo round trip p99, "+s.name, fmtMicros)
	}
	figs[0].p50.withGoal("≤ 1.10× and < coder", and(ratioAtMost(1.10), below("wsconn", "coder")))
	figs[1].p50.withGoal("≤ 1.10× and < coder", and(ratioAtMost(1.10), below("wsconn", "coder")))
	figs[2].p50.withGoal("≤ 0.50× and < coder", and(ratioAtMost(0.50), below("wsconn", "coder")))
	for i, s := range sizes {
		figs[i].pipe = t.fig("pipelined echo throughput, "+s.name+" (messages/s)", fmtRate)
	}
	figs[0].pipe.withGoal("≥ 1.0×", ratioAtLeast(1.0))
	figs[1].pipe.withGoal("≥ 1.1×", ratioAtLeast(1.1))
	figs[2].pipe.withGoal("≥ 3×", ratioAtLeast(3))
	pingP50 := t.fig("ping→pong p50", fmtMicros).withGoal("≤ 1.10×", ratioAtMost(1.10))
	pingP99 := t.fig("ping→pong p99", fmtMicros)

	// Round -1 warms every connection up and is not recorded.
	for r := -1; r < cfg.rounds; r++ {
		progress("round %d of %d: echo, pipelined, ping", r+1, cfg.rounds)
		scale := time.Duration(1)
		if r < 0 {
			scale = 4
		}
		for i, s := range sizes {
			p := wsbench.Payload(s.n)
			for _, lib := range rotate(cfg.libs, r+1) {
				c, err := cs.get(ctx, srv, lib, "echo"+s.name, false)
				if err != nil {
					return err
				}
				lat, err := wsbench.RoundTripsFor(ctx, c, p, cfg.echoDur/scale)
				if err != nil {
					return fmt.Errorf("%s echo %s: %w", lib.Name, s.name, err)
				}
				if r >= 0 {
					figs[i].p50.add(lib.Name, r, float64(wsbench.Percentile(lat, 0.50)))
					figs[i].p99.add(lib.Name, r, float64(wsbench.Percentile(lat, 0.99)))
				}
			}
			for _, lib := range rotate(cfg.libs, r+1) {
				c, err := cs.get(ctx, srv, lib, "echo"+s.name, false)
				if err != nil {
					return err
				}
				n, elapsed, err := wsbench.PipelineFor(ctx, c, p, cfg.pipeDur/scale)
				if err != nil {
					return fmt.Errorf("%s pipelined %s: %w", lib.Name, s.name, err)
				}
				if r >= 0 {
					figs[i].pipe.add(lib.Name, r, float64(n)/elapsed.Seconds())
				}
			}
		}
		for _, lib := range rotate(cfg.libs, r+1) {
			if !lib.HasPing() {
				continue
			}
			c, err := cs.get(ctx, srv, lib, "ping", true)
			if err != nil {
				return err
			}
			lat, err := wsbench.PingsFor(ctx, c, cfg.echoDur/scale)
			if err != nil {
				return fmt.Errorf("%s ping: %w", lib.Name, err)
			}
			if r >= 0 {
				pingP50.add(lib.Name, r, float64(wsbench.Percentile(lat, 0.50)))
				pingP99.add(lib.Name, r, float64(wsbench.Percentile(lat, 0.99)))
			}
		}
	}
	return nil
}

// runAllocs counts heap allocations per message on each side: sending to
// a sink (client sends, server receives) and receiving from a source
// (server sends, client receives).
func runAllocs(ctx context.Context, cfg config, srv *wsbench.ServerProc, t *table) error {
	progress("allocations per message")
	overhead := ^uint64(0) // allocations of one stats request in the server
	for range 3 {
		a, err := srv.Stats(ctx, false)
		if err != nil {
			return err
		}
		b, err := srv.Stats(ctx, false)
		if err != nil {
			return err
		}
		overhead = min(overhead, b.Mallocs-a.Mallocs)
	}
	serverMallocs := func() (uint64, error) {
		st, err := srv.Stats(ctx, false)
		return st.Mallocs, err
	}
	type side struct {
		name string
		path string
		run  func(c wsbench.Client, p []byte, n int) error
	}
	sides := []side{
		{"client sends, server receives", "/sink", func(c wsbench.Client, p []byte, n int) error { return wsbench.SinkRun(ctx, c, p, n) }},
		{"server sends, client receives", "/source", func(c wsbench.Client, p []byte, n int) error { return wsbench.SourceRun(ctx, c, n, len(p)) }},
	}
	for _, sd := range sides {
		for i, s := range sizes {
			var cf, sf *figure
			if sd.path == "/sink" {
				cf = t.fig("allocs per sent message, client, "+s.name, fmtCount).withZero(0.05)
				sf = t.fig("allocs per received message, server, "+s.name, fmtCount).withZero(0.05)
			} else {
				sf = t.fig("allocs per sent message, server, "+s.name, fmtCount).withZero(0.05)
				cf = t.fig("allocs per received message, client, "+s.name, fmtCount).withZero(0.05)
			}
			switch {
			case i == 0 && sd.path == "/sink":
				cf.withGoal("0", valueAtMost("wsconn", 0.05))
				sf.withGoal("≤ 1", valueAtMost("wsconn", 1.05))
			case i == 0:
				sf.withGoal("0", valueAtMost("wsconn", 0.05))
				cf.withGoal("≤ 1", valueAtMost("wsconn", 1.05))
			case i == 2:
				cf.withGoal("≤ 3", valueAtMost("wsconn", 3.05))
				sf.withGoal("≤ 3", valueAtMost("wsconn", 3.05))
			}
			n := 20000
			if s.n >= 64<<10 {
				n = 2000
			}
			p := wsbench.Payload(s.n)
			for _, lib := range cfg.libs {
				c, err := wsbench.Dial(ctx, lib, wsbench.DialConfig{Addr: srv.Addrs[lib.Name], Path: sd.path})
				if err != nil {
					return err
				}
				if err := sd.run(c, p, 200); err != nil {
					c.Close()
					return fmt.Errorf("%s %s: %w", lib.Name, sd.name, err)
				}
				s0, err := serverMallocs()
				if err != nil {
					c.Close()
					return err
				}
				c0 := wsbench.Mallocs()
				err = sd.run(c, p, n)
				c1 := wsbench.Mallocs()
				s1, serr := serverMallocs()
				c.Close()
				if err != nil {
					return fmt.Errorf("%s %s: %w", lib.Name, sd.name, err)
				}
				if serr != nil {
					return serr
				}
				cf.add(lib.Name, 0, float64(c1-c0)/float64(n))
				sf.add(lib.Name, 0, max(0, float64(s1-s0)-float64(overhead))/float64(n))
			}
		}
	}
	return nil
}

// runIdle measures idle connections, with and without a heartbeat; the
// 10,000-connection heartbeat run also measures CPU and ping latency.
func runIdle(ctx context.Context, cfg config, t *table) error {
	limit, err := wsbench.RaiseFDLimit()
	if err != nil {
		progress("%v", err)
	}
	for _, hb := range []time.Duration{0, cfg.interval} {
		for _, n := range cfg.idle {
			if uint64(n)+1000 > limit {
				progress("open-file limit %d: skipping %d connections", limit, n)
				continue
			}
			label := fmt.Sprintf("idle, %d conns", n)
			if hb > 0 {
				label = fmt.Sprintf("idle + %v heartbeat, %d conns", hb, n)
			}
			cb := t.fig(label+": client RSS per conn", fmtKiB)
			sb := t.fig(label+": server RSS per conn", fmtKiB)
			cg := t.fig(label+": client goroutines per conn", fmtCount)
			sg := t.fig(label+": server goroutines per conn", fmtCount)
			var cs, ss, ch, sh *figure
			if hb == 0 {
				cs = t.fig(label+": client stack per conn", fmtKiB)
				ss = t.fig(label+": server stack per conn", fmtKiB)
				ch = t.fig(label+": client heap per conn", fmtKiB)
				sh = t.fig(label+": server heap per conn", fmtKiB)
			}
			if hb == 0 {
				cb.withGoal("≤ 1.2×", ratioAtMost(1.2))
				sb.withGoal("≤ 1.0×", ratioAtMost(1.0))
			}
			var window time.Duration
			var p50, p99, ccpu, scpu, fails, load *figure
			if hb > 0 && n >= cfg.hbMin {
				window = cfg.window
				hl := fmt.Sprintf("heartbeat %v, %d conns", hb, n)
				p50 = t.fig(hl+": ping p50", fmtMillis)
				p99 = t.fig(hl+": ping p99", fmtMillis).withGoal("≤ gorilla", ratioAtMost(1.0))
				ccpu = t.fig(hl+": client CPU (share of one core)", fmtPercent)
				scpu = t.fig(hl+": server CPU (share of one core)", fmtPercent)
				fails = t.fig(hl+": failed pings", fmtCount).withZero(0.5)
				load = t.fig(hl+": machine load average (1 min) after the window", fmtCount)
			}
			for _, lib := range cfg.libs {
				if hb > 0 && !lib.HasPing() {
					continue
				}
				progress("%s: %s", label, lib.Name)
				r, err := wsbench.MeasureIdle(ctx, lib, n, hb, window)
				if err != nil {
					return fmt.Errorf("%s %s: %w", lib.Name, label, err)
				}
				cb.add(lib.Name, 0, r.ClientBytes)
				sb.add(lib.Name, 0, r.ServerBytes)
				cg.add(lib.Name, 0, r.ClientGoroutines)
				sg.add(lib.Name, 0, r.ServerGoroutines)
				if hb == 0 {
					cs.add(lib.Name, 0, r.ClientStack)
					ss.add(lib.Name, 0, r.ServerStack)
					ch.add(lib.Name, 0, r.ClientHeap)
					sh.add(lib.Name, 0, r.ServerHeap)
				}
				if window > 0 {
					p50.add(lib.Name, 0, float64(r.PingP50))
					p99.add(lib.Name, 0, float64(r.PingP99))
					ccpu.add(lib.Name, 0, r.ClientCPU)
					scpu.add(lib.Name, 0, r.ServerCPU)
					fails.add(lib.Name, 0, float64(r.PingFailures))
					load.add(lib.Name, 0, r.LoadAvg)
				}
			}
		}
	}
	return nil
}
