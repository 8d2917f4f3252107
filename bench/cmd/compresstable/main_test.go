package main

import (
	"strings"
	"testing"

	"github.com/wsnursery/wsnursery/bench/internal/wsbench"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseMedians(t *testing.T) {
	out := `goos: linux
BenchmarkCompressEcho/json-1KiB/gorilla-2   200  57251 ns/op  17.89 MB/s  100 msgs/s  397.0 wire-B/msg  4784 B/op  24 allocs/op
BenchmarkCompressEcho/json-1KiB/gorilla-2   200  57251 ns/op  17.89 MB/s  300 msgs/s  397.0 wire-B/msg  4784 B/op  24 allocs/op
BenchmarkCompressEcho/json-1KiB/gorilla-2   200  57251 ns/op  17.89 MB/s  200 msgs/s  397.0 wire-B/msg  4784 B/op  24 allocs/op
BenchmarkCompressEcho/json-1KiB/wsconn-2    200  57251 ns/op  17.89 MB/s  400 msgs/s  397.0 wire-B/msg  4784 B/op  12 allocs/op
BenchmarkCompressIdle/wsconn-plain-2        1    19 ns/op  21501 idle-heap-B/conn  15237 idle-stack-B/conn
PASS
`
	f, order, err := parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ","); got != "json-1KiB/gorilla,json-1KiB/wsconn,wsconn-plain" {
		t.Errorf("order %q", got)
	}
	if got := f.get("CompressEcho", "json-1KiB/gorilla", "msgs/s"); got != 200 {
		t.Errorf("median msgs/s = %v, want 200", got)
	}
	if got := f.get("CompressEcho", "json-1KiB/wsconn", "allocs/op"); got != 12 {
		t.Errorf("allocs/op = %v, want 12", got)
	}
	if got := f.get("CompressIdle", "wsconn-plain", "idle-stack-B/conn"); got != 15237 {
		t.Errorf("idle stack = %v", got)
	}
	// Per run: 400/100 (the only paired run), so the first run decides.
	if got := f.ratio("CompressEcho", "json-1KiB/wsconn", "json-1KiB/gorilla", "msgs/s"); got != "4.00×" {
		t.Errorf("ratio = %q, want 4.00× (paired with gorilla's first run)", got)
	}
	if wsbench.Median([]float64{1, 2, 3, 4}) != 2.5 {
		t.Error("median of an even count is the mean of the middle two")
	}
}
