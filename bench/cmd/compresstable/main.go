// Command compresstable turns the output of the compression benchmarks
// (bench/compress_test.go) into the markdown tables of bench/README.md:
// the median of each figure over the runs, and its ratio to gorilla's
// (EnableCompression) as the median over runs of the ratio within a run, so
// that a noisy machine moves both sides of each ratio together; idle
// memory against uncompressed wsconn. The load average at the end is
// printed too. A benchmark's n-th figure belongs to the n-th run: run the
// whole group several times rather than with -count, which repeats each
// benchmark in a row.
//
// Usage (inside bench/):
//
//	for i in 1 2 3 4 5; do go test -run '^$' -bench Compress .; done | go run ./cmd/compresstable
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/wsnursery/wsnursery/bench/internal/wsbench"
)

// line matches "BenchmarkCompressEcho/json-1KiB/wsconn-2  200  57251 ns/op  17.89 MB/s ...".
var line = regexp.MustCompile(`^Benchmark(Compress\w+)/(\S+?)(-\d+)?\s+\d+\s+(.*)$`)

// figures maps benchmark → sub-benchmark name → unit → values, one per
// run in order (a benchmark missing from a run shifts its later values,
// which ratio then pairs with fewer runs).
type figures map[string]map[string]map[string][]float64

func parse(r io.Reader) (figures, []string, error) {
	f := figures{}
	var order []string // sub-benchmark names in first-seen order
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		bench, name, fields := m[1], m[2], strings.Fields(m[4])
		if f[bench] == nil {
			f[bench] = map[string]map[string][]float64{}
		}
		if f[bench][name] == nil {
			f[bench][name] = map[string][]float64{}
			if !slices.Contains(order, name) {
				order = append(order, name)
			}
		}
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("bad figure %q in %q", fields[i], sc.Text())
			}
			f[bench][name][fields[i+1]] = append(f[bench][name][fields[i+1]], v)
		}
	}
	return f, order, sc.Err()
}

func (f figures) get(bench, name, unit string) float64 { return wsbench.Median(f[bench][name][unit]) }

// ratio is the median over runs of name's figure over base's in the same run.
func (f figures) ratio(bench, name, base, unit string) string {
	a, b := f[bench][name][unit], f[bench][base][unit]
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	if len(rs) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", wsbench.Median(rs))
}

func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func main() {
	f, order, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	fmt.Fprintln(w, "| payload | library | wire B/msg | vs gorilla | echo msgs/s | vs gorilla | pipelined msgs/s | vs gorilla | allocs/round trip | vs gorilla |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, name := range order {
		payload, lib, ok := strings.Cut(name, "/")
		if !ok || f["CompressEcho"][name] == nil {
			continue
		}
		base := payload + "/gorilla"
		cell := func(bench, unit string) string {
			return num(f.get(bench, name, unit)) + " | " + f.ratio(bench, name, base, unit)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", payload, lib,
			cell("CompressEcho", "wire-B/msg"), cell("CompressEcho", "msgs/s"),
			cell("CompressPipelined", "msgs/s"), cell("CompressEcho", "allocs/op"))
	}
	if idle := f["CompressIdle"]; idle != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| library (idle, both ends) | heap B/conn | vs wsconn-plain | stacks B/conn | heap+stacks vs wsconn-plain |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		for _, m := range idle { // heap and stacks together, per run
			for i, h := range m["idle-heap-B/conn"] {
				if i < len(m["idle-stack-B/conn"]) {
					m["idle-B/conn"] = append(m["idle-B/conn"], h+m["idle-stack-B/conn"][i])
				}
			}
		}
		for _, name := range order {
			if idle[name] == nil {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", name,
				num(f.get("CompressIdle", name, "idle-heap-B/conn")), f.ratio("CompressIdle", name, "wsconn-plain", "idle-heap-B/conn"),
				num(f.get("CompressIdle", name, "idle-stack-B/conn")), f.ratio("CompressIdle", name, "wsconn-plain", "idle-B/conn"))
		}
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(w, "\nload average at the end: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	}
}
