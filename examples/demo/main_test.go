package main_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	main "github.com/wsnursery/wsnursery/examples/demo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemo runs the demo and checks that its story is told in order: echoes
// and pongs, the stall, the heartbeat failing, both siblings cancelled with
// the heartbeat's error as cause, Open returning it, the end.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out strings.Builder
	if err := main.Run(ctx, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	text := out.String()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	stamp := regexp.MustCompile(`^\[\+\d+\.\d{3}s\] \S+ +\S`)
	for _, l := range lines {
		if !stamp.MatchString(l) {
			t.Errorf("line without a timestamp and speaker: %q", l)
		}
	}
	const cause = `heartbeat: peer too slow to answer ping: no pong within 500ms`
	// Each group must follow the previous one; the lines of a group may come
	// in any order.
	groups := [][]string{
		{`server    listening on ws://127\.0\.0\.1:\d+/$`},
		{`client    connected; `},
		{`heartbeat pong after \d`, `reader    received "message 1"$`},
		{`server    got "stall": the handler stops reading`},
		{`heartbeat FAILED: ` + cause},
		{`reader    cancelled; context\.Cause\(ctx\) = ` + cause + `$`, `producer  cancelled; context\.Cause\(ctx\) = ` + cause + `$`},
		{`client    Open returned after \S+: ` + cause + `$`},
		{`client    errors\.Is\(err, heartbeat\.ErrTooSlow\) = true$`},
		{`client    connection closed: Open sent close code 1011 \(internal error\) `},
		{`demo      done$`},
	}
	next := 0 // lines before next are used up
	for _, g := range groups {
		end := next
		for _, re := range g {
			rx := regexp.MustCompile(`^\[\+[0-9.]+s\] ` + re)
			found := -1
			for i := next; i < len(lines); i++ {
				if rx.MatchString(lines[i]) {
					found = i
					break
				}
			}
			if found < 0 {
				t.Fatalf("no line matching %q after line %d; output:\n%s", re, next, text)
			}
			end = max(end, found+1)
		}
		next = end
	}
	if next != len(lines) {
		t.Fatalf("the output goes on after \"done\":\n%s", text)
	}
}
