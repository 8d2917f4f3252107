package main

import (
	"math"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRatioIsMedianOfSameRoundRatios(t *testing.T) {
	tb := newTable([]string{"gorilla", "wsconn"})
	f := tb.fig("echo", fmtMicros)
	// Round 1 is slow for both: the ratio must not move.
	for r, v := range []float64{10, 100, 10} {
		f.add("gorilla", r, v)
		f.add("wsconn", r, 2*v)
	}
	if got := f.ratio("wsconn", "gorilla"); got != 2 {
		t.Fatalf("ratio = %v, want 2", got)
	}
	if got := f.medians()["wsconn"]; got != 20 {
		t.Fatalf("median = %v, want 20", got)
	}
}

func TestMarkdownGoalAndMissingValues(t *testing.T) {
	tb := newTable([]string{"gorilla", "wsconn", "tcp"})
	tb.fig("ping p50", fmtMicros).withGoal("≤ 1.10×", ratioAtMost(1.10))
	tb.byName["ping p50"].add("gorilla", 0, 1000)
	tb.byName["ping p50"].add("wsconn", 0, 1050)
	tb.fig("allocs", fmtCount).withGoal("0", valueAtMost("wsconn", 0.05))
	tb.byName["allocs"].add("gorilla", 0, 0)
	tb.byName["allocs"].add("wsconn", 0, 2)
	md := tb.markdown("gorilla", "wsconn")
	for _, want := range []string{
		"| figure | gorilla | wsconn | tcp | goal for wsconn |",
		"| ping p50 | 1.0 µs | 1.1 µs (1.05×) | n/a | ✔ ≤ 1.10× |",
		"| allocs | 0.00 | 2.00 (—) | n/a | ✘ 0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}

func TestMedianSkipsMissing(t *testing.T) {
	if got := median([]float64{math.NaN(), 3, 1, 2}); got != 2 {
		t.Fatalf("median = %v, want 2", got)
	}
	if !math.IsNaN(median(nil)) {
		t.Fatal("median of nothing is not NaN")
	}
}
