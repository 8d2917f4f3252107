package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/wsnursery/wsnursery/bench/internal/wsbench"
)

// uptime returns the machine's load averages, as uptime prints them.
func uptime() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}

// runMany measures many connections doing closed-loop 16 B echo, in
// rounds like the single-connection figures.
func runMany(ctx context.Context, cfg config, srv *wsbench.ServerProc, t *table) error {
	if cfg.many <= 0 {
		return nil
	}
	if limit, err := wsbench.RaiseFDLimit(); err != nil || uint64(cfg.many)+1000 > limit {
		progress("open-file limit %d (%v): skipping the %d-connection echo", limit, err, cfg.many)
		return nil
	}
	label := fmt.Sprintf("%d conns, closed-loop 16 B echo", cfg.many)
	rate := t.fig(label+": round trips/s", fmtRate).withGoal("≥ 1.0×", ratioAtLeast(1.0))
	cpu := t.fig(label+": CPU per round trip, both processes", fmtMicros).withGoal("≤ 1.10×", ratioAtMost(1.10))
	for r := range cfg.manyRounds {
		for _, lib := range rotate(cfg.libs, r) {
			progress("%s, round %d of %d: %s", label, r+1, cfg.manyRounds, lib.Name)
			res, err := wsbench.ManyEcho(ctx, srv, lib, cfg.many, 16, cfg.manyWindow/4, cfg.manyWindow)
			if err != nil {
				return fmt.Errorf("%s %s: %w", lib.Name, label, err)
			}
			rate.add(lib.Name, r, res.Rate())
			cpu.add(lib.Name, r, float64(res.CPUPerMsg()))
		}
	}
	return nil
}

// runFanout measures the fan-out hubs: the chat-style hub in gorilla's
// column, recipes/broadcast in wsconn's.
func runFanout(ctx context.Context, cfg config, srv *wsbench.ServerProc, t *table) error {
	if cfg.fanout <= 0 {
		return nil
	}
	if limit, err := wsbench.RaiseFDLimit(); err != nil || uint64(cfg.fanout)+1000 > limit {
		progress("open-file limit %d (%v): skipping the fan-out to %d subscribers", limit, err, cfg.fanout)
		return nil
	}
	column := map[string]string{wsbench.FanoutChat: wsbench.Baseline, wsbench.FanoutBroadcast: "wsconn"}
	label := fmt.Sprintf("fan-out to %d subscribers (gorilla: chat-example hub; wsconn: recipes/broadcast)", cfg.fanout)
	p50 := t.fig(label+": last delivery p50", fmtMillis).withGoal("≤ 0.50×", ratioAtMost(0.5))
	p99 := t.fig(label+": last delivery p99", fmtMillis)
	rate := t.fig(label+": deliveries/s at saturation", fmtRate).withGoal("≥ 2×", ratioAtLeast(2))
	cpu := t.fig(label+": CPU per delivery at saturation, both processes", fmtMicros)
	for _, hub := range wsbench.FanoutHubs() {
		progress("%s: %s", label, hub)
		res, err := wsbench.Fanout(ctx, srv, hub, cfg.fanout, cfg.fanPubs, cfg.fanWindow)
		if err != nil {
			return fmt.Errorf("%s: %w", hub, err)
		}
		col := column[hub]
		p50.add(col, 0, float64(wsbench.Percentile(res.Latency, 0.5)))
		p99.add(col, 0, float64(wsbench.Percentile(res.Latency, 0.99)))
		rate.add(col, 0, res.Rate())
		if res.Deliveries > 0 {
			cpu.add(col, 0, float64(res.ClientCPU+res.ServerCPU)/float64(res.Deliveries))
		}
	}
	return nil
}

// sample is one recorded value of a figure, as the pinned child reports it.
type sample struct {
	Fig   string
	Lib   string
	Round int
	V     float64
}

// printSamples runs the single-connection rounds and prints their samples.
func printSamples(ctx context.Context, cfg config) error {
	names := make([]string, len(cfg.libs))
	for i, l := range cfg.libs {
		names[i] = l.Name
	}
	t := newTable(names)
	srv, err := wsbench.StartServer()
	if err != nil {
		return err
	}
	defer srv.Stop()
	if err := runRounds(ctx, cfg, srv, t); err != nil {
		return err
	}
	var out []sample
	for _, f := range t.figures {
		for lib, vs := range f.samples {
			for r, v := range vs {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					continue // not measured in that round; JSON has no NaN
				}
				out = append(out, sample{f.name, lib, r, v})
			}
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// pinnedSuffix marks the rows measured with both processes on one CPU.
const pinnedSuffix = " — both processes on CPU 0"

// runPinned reruns the single-connection figures in a copy of this command
// started under `taskset -c 0`, so that the client and the server process
// (which inherits the affinity) share one CPU: the CPU path alone, with no
// wake-up of another CPU.
func runPinned(ctx context.Context, cfg config, t *table) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		progress("no taskset: skipping the pinned figures")
		return nil
	}
	names := make([]string, len(cfg.libs))
	for i, l := range cfg.libs {
		names[i] = l.Name
	}
	progress("single-connection figures again, both processes on CPU 0")
	cmd := exec.CommandContext(ctx, taskset, "-c", "0", exe, "-samples",
		"-libs", strings.Join(names, ","), "-rounds", strconv.Itoa(cfg.rounds),
		"-echo", cfg.echoDur.String(), "-pipe", cfg.pipeDur.String())
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 10 * time.Second
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("pinned run: %w", err)
	}
	var samples []sample
	if err := json.Unmarshal(b, &samples); err != nil {
		return fmt.Errorf("pinned run: %w", err)
	}
	// Rows in the order of the unpinned ones.
	byFig := map[string][]sample{}
	for _, s := range samples {
		byFig[s.Fig] = append(byFig[s.Fig], s)
	}
	for _, f := range append([]*figure(nil), t.figures...) {
		ss, ok := byFig[f.name]
		if !ok {
			continue
		}
		pf := t.fig(f.name+pinnedSuffix, f.format)
		for _, s := range ss {
			pf.add(s.Lib, s.Round, s.V)
		}
	}
	return nil
}
