package wsbench

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stats is a snapshot of one process.
type Stats struct {
	Mallocs    uint64        // cumulative heap allocations
	Goroutines int           // goroutines now
	RSS        int64         // resident set, bytes
	HeapInuse  uint64        // bytes in in-use heap spans
	StackInuse uint64        // bytes of goroutine stacks
	CPU        time.Duration // user + system time so far
	At         time.Time     // when taken (wall clock)
}

// ReadStats takes a snapshot. With gc it first collects garbage and returns
// free memory to the OS, so that RSS shows what is live.
func ReadStats(gc bool) Stats {
	if gc {
		runtime.GC()
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Stats{
		Mallocs:    ms.Mallocs,
		Goroutines: runtime.NumGoroutine(),
		RSS:        rss(),
		HeapInuse:  ms.HeapInuse,
		StackInuse: ms.StackInuse,
		CPU:        cpuTime(),
		At:         time.Now(),
	}
}

// rss reads the resident set size from /proc (0 where there is none).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RaiseFDLimit raises the soft limit on open files to the hard limit and
// returns the limit now in force.
func RaiseFDLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("failed to read the open-file limit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return rl.Cur, fmt.Errorf("failed to raise the open-file limit: %w", err)
		}
	}
	return rl.Cur, nil
}

// LoadAvg returns the machine's 1-minute load average (0 where unknown):
// the run queue other processes put in front of the benchmark.
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// Median returns the median of v (the mean of the middle two for an even
// count), or 0 for none; v is not modified. The table commands under cmd/
// report medians over runs with it.
func Median(v []float64) float64 {
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
