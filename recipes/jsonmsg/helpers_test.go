package jsonmsg_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/wsconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context { return wstest.Context(t, 0) }

// pair returns the two ends of a connection over 127.0.0.1; both are closed
// when the test ends. The server end's reader is left to the test.
func pair(t *testing.T, ctx context.Context, opts *wsconn.ServerOptions) (client, server *wsconn.Conn) {
	t.Helper()
	return wstest.Pair(t, ctx, opts)
}
