// Command compresstable turns the output of the compression benchmarks
// (bench/compress_test.go) into the markdown tables of bench/README.md:
// the median of each figure over the -count runs, with its ratio to
// gorilla's (EnableCompression) measured in the same run, and idle memory
// against uncompressed wsconn. The load average at the end is printed too.
//
// Usage (inside bench/):
//
//	go test -run '^$' -bench Compress -count 5 . | go run ./cmd/compresstable
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
)

// line matches "BenchmarkCompressEcho/json-1KiB/wsconn-2  200  57251 ns/op  17.89 MB/s ...".
var line = regexp.MustCompile(`^Benchmark(Compress\w+)/(\S+?)(-\d+)?\s+\d+\s+(.*)$`)

// figures maps benchmark → sub-benchmark name → unit → values.
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

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (f figures) get(bench, name, unit string) float64 { return median(f[bench][name][unit]) }

func ratio(v, base float64) string {
	if base == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v/base)
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
			v := f.get(bench, name, unit)
			return num(v) + " | " + ratio(v, f.get(bench, base, unit))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", payload, lib,
			cell("CompressEcho", "wire-B/msg"), cell("CompressEcho", "msgs/s"),
			cell("CompressPipelined", "msgs/s"), cell("CompressEcho", "allocs/op"))
	}
	if idle := f["CompressIdle"]; idle != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| library (idle, both ends) | heap B/conn | vs wsconn-plain | stacks B/conn | heap+stacks vs wsconn-plain |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		baseHeap := f.get("CompressIdle", "wsconn-plain", "idle-heap-B/conn")
		baseAll := baseHeap + f.get("CompressIdle", "wsconn-plain", "idle-stack-B/conn")
		for _, name := range order {
			if idle[name] == nil {
				continue
			}
			h, s := f.get("CompressIdle", name, "idle-heap-B/conn"), f.get("CompressIdle", name, "idle-stack-B/conn")
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", name, num(h), ratio(h, baseHeap), num(s), ratio(h+s, baseAll))
		}
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(w, "\nload average at the end: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	}
}
