package main_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/wsnursery/wsnursery/examples/internal/extest"
	"github.com/wsnursery/wsnursery/wsconn"
)

// TestCompress: with -compress the server negotiates permessage-deflate
// with a client that offers it, and not with one that does not.
func TestCompress(t *testing.T) {
	srv, url := extest.StartServer(t, extest.Build(t, "."), "-compress")
	c := dial(t, url, &wsconn.DialOptions{Compression: wsconn.CompressionNoContextTakeover})
	if got := c.Compression(); got != wsconn.CompressionNoContextTakeover {
		t.Fatalf("Compression() = %v, want %v", got, wsconn.CompressionNoContextTakeover)
	}
	echo(t, c, wsconn.Message{Type: wsconn.Text, Data: []byte(strings.Repeat("compress me ", 100))})
	srv.WaitStderr(t, regexp.MustCompile(`msg="connection opened" remote=\S+ compression=no-context-takeover path=/`))
	plain := dial(t, url, nil)
	if got := plain.Compression(); got != wsconn.CompressionDisabled {
		t.Errorf("a client that offers nothing: Compression() = %v", got)
	}
	echo(t, plain, wsconn.Message{Type: wsconn.Binary, Data: []byte{1, 2, 3}})
}
