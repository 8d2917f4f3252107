package main_test

import (
	"strings"
	"testing"

	"github.com/wsnursery/wsnursery/examples/internal/extest"
)

// TestCompress: -compress offers permessage-deflate; against the example
// server with -compress the client says it was negotiated, and a long
// message still echoes whole.
func TestCompress(t *testing.T) {
	_, url := extest.StartServer(t, extest.Build(t, "../server"), "-compress")
	long := strings.Repeat("squeeze ", 200)
	stdout, stderr, code := runClient(t, "send "+long+"\nwait\nclose\n", "-compress", url)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, `connected to `+url+`, permessage-deflate `) {
		t.Errorf("stderr does not name the compression:\n%s", stderr)
	}
	if !strings.Contains(stdout, "< "+strings.TrimSpace(long)) {
		t.Errorf("the long message did not come back:\n%s", stdout)
	}
	_, stderr, code = runClient(t, "close\n", url)
	if code != 0 || strings.Contains(stderr, "permessage-deflate") {
		t.Errorf("without -compress: exit code %d, stderr:\n%s", code, stderr)
	}
}
