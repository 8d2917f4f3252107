// Package cliflag holds the command-line flag types shared by the example
// programs.
package cliflag

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Default heartbeat settings, used when -heartbeat is given without values:
// a peer that takes longer than DefaultTimeout to answer a ping is dropped,
// and a ping is sent every DefaultInterval.
const (
	DefaultTimeout  = time.Second
	DefaultInterval = 15 * time.Second
)

// Heartbeat is a flag.Value for "-heartbeat": off by default; "-heartbeat"
// alone (or "-heartbeat=true") turns it on with the defaults;
// "-heartbeat=TIMEOUT,INTERVAL" (e.g. "-heartbeat=1s,15s") sets both values.
type Heartbeat struct {
	Enabled  bool
	Timeout  time.Duration
	Interval time.Duration
}

// IsBoolFlag lets the flag be given without a value.
func (h *Heartbeat) IsBoolFlag() bool { return true }

// String returns the flag's value in the form Set accepts.
func (h *Heartbeat) String() string {
	if h == nil || !h.Enabled {
		return "false"
	}
	return h.Timeout.String() + "," + h.Interval.String()
}

// Set parses "true", "false" or "TIMEOUT,INTERVAL".
func (h *Heartbeat) Set(s string) error {
	if b, err := strconv.ParseBool(s); err == nil {
		*h = Heartbeat{Enabled: b, Timeout: DefaultTimeout, Interval: DefaultInterval}
		return nil
	}
	ts, is, ok := strings.Cut(s, ",")
	if !ok {
		return errors.New(`want "TIMEOUT,INTERVAL", e.g. "1s,15s"`)
	}
	timeout, err := time.ParseDuration(strings.TrimSpace(ts))
	if err != nil {
		return fmt.Errorf("bad timeout: %w", err)
	}
	interval, err := time.ParseDuration(strings.TrimSpace(is))
	if err != nil {
		return fmt.Errorf("bad interval: %w", err)
	}
	if timeout <= 0 || interval <= 0 {
		return errors.New("timeout and interval must be positive")
	}
	*h = Heartbeat{Enabled: true, Timeout: timeout, Interval: interval}
	return nil
}
