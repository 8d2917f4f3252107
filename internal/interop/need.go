package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/wsnursery/wsnursery/internal/wstest"
)

// RequireEnv is the environment variable that turns a missing peer from a
// skipped test into a failed one (set to "1", as CI does).
const RequireEnv = "WSNURSERY_REQUIRE_PEERS"

// Need stops t when err reports a missing peer: t is skipped, or failed when
// RequireEnv is "1". It does nothing when err is nil.
func Need(t wstest.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("peer required (%s=1) but unavailable: %v", RequireEnv, err)
	}
	t.Skipf("peer unavailable, skipping (set %s=1 to fail instead): %v", RequireEnv, err)
}

// Python is Debian's interpreter, which sees the python3-* packages (a
// python3 earlier on PATH may not).
const Python = "/usr/bin/python3"

// NodePath is where Debian's node-* packages install Node modules.
const NodePath = "/usr/share/nodejs"

// Chromium is Debian's Chromium launcher.
const Chromium = "/usr/bin/chromium"

// HavePython reports whether Python can import every module.
func HavePython(modules ...string) error {
	return probe(Python, nil, "-c", "import "+strings.Join(modules, ", "))
}

// HaveNode reports whether node can load every module from NodePath.
func HaveNode(modules ...string) error {
	node, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("node is not installed: %w", err)
	}
	var js strings.Builder
	for _, m := range modules {
		fmt.Fprintf(&js, "require(%q);", m)
	}
	return probe(node, []string{"NODE_PATH=" + NodePath}, "-e", js.String())
}

// HaveChromium reports whether Chromium is installed.
func HaveChromium() error {
	if _, err := os.Stat(Chromium); err != nil {
		return fmt.Errorf("chromium is not installed: %w", err)
	}
	return nil
}

func probe(name string, env []string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return fmt.Errorf("%s is not usable: %w", name, err)
	}
	return nil
}
