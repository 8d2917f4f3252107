package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// figure is one row of the table: samples per library, one per round.
type figure struct {
	name   string
	format func(float64) string
	// goal, if not nil, judges wsconn's figure: ratio to the baseline and
	// every library's median. text describes it.
	goal     func(ratio float64, med map[string]float64) bool
	goalText string
	samples  map[string][]float64 // library → value per round (NaN: none)
	// zero is the magnitude below which a baseline counts as 0 (no ratio).
	zero float64
}

// table is every figure in the order added.
type table struct {
	libs    []string
	figures []*figure
	byName  map[string]*figure
}

func newTable(libs []string) *table {
	return &table{libs: libs, byName: map[string]*figure{}}
}

// fig returns the row name, adding it with format on first use.
func (t *table) fig(name string, format func(float64) string) *figure {
	if f, ok := t.byName[name]; ok {
		return f
	}
	f := &figure{name: name, format: format, samples: map[string][]float64{}}
	t.byName[name] = f
	t.figures = append(t.figures, f)
	return f
}

// add records a sample for lib in round r.
func (f *figure) add(lib string, r int, v float64) {
	s := f.samples[lib]
	for len(s) <= r {
		s = append(s, math.NaN())
	}
	s[r] = v
	f.samples[lib] = s
}

// withGoal attaches a goal to f.
func (f *figure) withGoal(text string, ok func(ratio float64, med map[string]float64) bool) *figure {
	f.goalText, f.goal = text, ok
	return f
}

func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// medians returns each library's median.
func (f *figure) medians() map[string]float64 {
	m := map[string]float64{}
	for lib, s := range f.samples {
		m[lib] = median(s)
	}
	return m
}

// ratio is the median over rounds of lib's figure divided by the
// baseline's in the same round.
func (f *figure) ratio(lib, baseline string) float64 {
	a, b := f.samples[lib], f.samples[baseline]
	var rs []float64
	for i := range min(len(a), len(b)) {
		if math.Abs(b[i]) > f.zero && !math.IsNaN(a[i]) && !math.IsNaN(b[i]) {
			rs = append(rs, a[i]/b[i])
		}
	}
	return median(rs)
}

// markdown renders the table: one column per library with value and ratio
// to the baseline, and a column judging wsconn against its goal.
func (t *table) markdown(baseline, ours string) string {
	var sb strings.Builder
	sb.WriteString("| figure |")
	for _, l := range t.libs {
		sb.WriteString(" " + l + " |")
	}
	sb.WriteString(" goal for " + ours + " |\n|---|")
	for range t.libs {
		sb.WriteString("---:|")
	}
	sb.WriteString("---|\n")
	for _, f := range t.figures {
		med := f.medians()
		sb.WriteString("| " + f.name + " |")
		for _, l := range t.libs {
			v, ok := med[l]
			if !ok || math.IsNaN(v) {
				sb.WriteString(" n/a |")
				continue
			}
			cell := f.format(v)
			if l != baseline {
				if r := f.ratio(l, baseline); !math.IsNaN(r) {
					cell += fmt.Sprintf(" (%.2f×)", r)
				} else if base, ok := med[baseline]; ok && math.Abs(base) <= f.zero {
					cell += " (—)"
				}
			}
			sb.WriteString(" " + cell + " |")
		}
		goal := ""
		if f.goal != nil {
			r := f.ratio(ours, baseline)
			if math.IsNaN(r) {
				r = math.Inf(1)
			}
			mark := "✘"
			if f.goal(r, med) {
				mark = "✔"
			}
			goal = mark + " " + f.goalText
		}
		sb.WriteString(" " + goal + " |\n")
	}
	return sb.String()
}

func fmtMicros(ns float64) string { return fmt.Sprintf("%.1f µs", ns/1e3) }
func fmtMillis(ns float64) string { return fmt.Sprintf("%.2f ms", ns/1e6) }
func fmtRate(perSec float64) string {
	return fmt.Sprintf("%.1f k/s", perSec/1e3)
}
func fmtCount(v float64) string { return fmt.Sprintf("%.2f", v) }

// withZero sets the magnitude below which the baseline counts as zero.
func (f *figure) withZero(z float64) *figure {
	f.zero = z
	return f
}
func fmtKiB(b float64) string     { return fmt.Sprintf("%.1f KiB", b/1024) }
func fmtPercent(v float64) string { return fmt.Sprintf("%.1f %%", 100*v) }

// Goal helpers.
func ratioAtMost(x float64) func(float64, map[string]float64) bool {
	return func(r float64, _ map[string]float64) bool { return r <= x }
}

func ratioAtLeast(x float64) func(float64, map[string]float64) bool {
	return func(r float64, _ map[string]float64) bool { return r >= x }
}

func valueAtMost(lib string, x float64) func(float64, map[string]float64) bool {
	return func(_ float64, m map[string]float64) bool { v, ok := m[lib]; return ok && v <= x }
}

func and(fs ...func(float64, map[string]float64) bool) func(float64, map[string]float64) bool {
	return func(r float64, m map[string]float64) bool {
		for _, f := range fs {
			if !f(r, m) {
				return false
			}
		}
		return true
	}
}

func below(lib, other string) func(float64, map[string]float64) bool {
	return func(_ float64, m map[string]float64) bool {
		a, ok1 := m[lib]
		b, ok2 := m[other]
		return ok1 && ok2 && a < b
	}
}
