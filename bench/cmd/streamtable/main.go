// Command streamtable turns the output of the streaming benchmarks
// (bench/stream_test.go) into the table of bench/README.md: per figure the
// median over rounds, and the median over rounds of each library's ratio
// to the baseline (gorilla for Stream*, coder for NetConnCopy) measured in
// the same round. The n-th result of each library is taken as round n, so
// run rounds, not -count:
//
//	for i in 1 2 3 4 5 6 7; do go test -run '^$' -bench 'Stream|NetConnCopy' -count 1 .; done | go run ./cmd/streamtable
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

// line matches "BenchmarkStreamRead/16MiB/wsconn-2  100  6660840 ns/op  2518.78 MB/s ...".
var line = regexp.MustCompile(`^Benchmark(\w+)/(\w+)/(\w+?)(-\d+)?\s+\d+\s+(.*)$`)

type key struct{ bench, lib, unit string }

func parse(r io.Reader) (map[key][]float64, []string, map[string][]string) {
	vals := map[key][]float64{}
	var benches []string
	libs := map[string][]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		bench := m[1] + " " + m[2]
		if !slices.Contains(benches, bench) {
			benches = append(benches, bench)
		}
		if !slices.Contains(libs[bench], m[3]) {
			libs[bench] = append(libs[bench], m[3])
		}
		fields := strings.Fields(m[5])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err == nil {
				k := key{bench, m[3], fields[i+1]}
				vals[k] = append(vals[k], v)
			}
		}
	}
	return vals, benches, libs
}

// ratio is the median over rounds of a[i]/b[i].
func ratio(a, b []float64) float64 {
	var r []float64
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return wsbench.Median(r)
}

func main() {
	vals, benches, libs := parse(os.Stdin)
	units := []struct{ unit, label, format string }{
		{"MB/s", "MB/s", "%.0f"},
		{"peak-heap-KiB", "peak heap KiB", "%.0f"},
		{"B/op", "B/op", "%.0f"},
	}
	fmt.Println("| benchmark | library | MB/s | ratio | peak heap KiB | B/op | rounds |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|")
	for _, bench := range benches {
		base := libs[bench][0]
		for _, lib := range libs[bench] {
			row := []string{bench, lib}
			for i, u := range units {
				v := vals[key{bench, lib, u.unit}]
				cell := "–"
				if len(v) > 0 {
					cell = fmt.Sprintf(u.format, wsbench.Median(v))
				}
				row = append(row, cell)
				if i == 0 {
					row = append(row, fmt.Sprintf("%.2f×", ratio(v, vals[key{bench, base, u.unit}])))
				}
			}
			row = append(row, strconv.Itoa(len(vals[key{bench, lib, "MB/s"}])))
			fmt.Println("| " + strings.Join(row, " | ") + " |")
		}
	}
}
