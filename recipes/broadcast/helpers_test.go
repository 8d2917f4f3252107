package broadcast_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/wsconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every wait in this package's tests.
const testTimeout = 20 * time.Second

func testCtx(t *testing.T) context.Context { return wstest.Context(t, testTimeout) }

// startServer serves on 127.0.0.1 until the test ends. Each accepted
// connection runs handle in a nursery next to a task that drains Receive
// (discarding what the client sends), so the connection notices the
// client's Close; the handler returns once both have returned.
func startServer(t *testing.T, handle func(ctx context.Context, c *wsconn.Conn) error) string {
	t.Helper()
	return wstest.Serve(t, wstest.SmallSendBuf(wstest.Listen(t)), func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		return nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error { return handle(ctx, c) })
			for {
				if _, err := c.Receive(ctx); err != nil {
					return nil
				}
			}
		})
	}, &wsconn.ServerOptions{DisconnectTimeout: 5 * time.Second}).URL
}

// numbered is message i: its number in 8 digits, padded to size bytes.
func numbered(i, size int) wsconn.Message {
	b := make([]byte, size)
	for j := range b {
		b[j] = '.'
	}
	copy(b, []byte(strconv.Itoa(100000000 + i)[1:]))
	return wsconn.Message{Type: wsconn.Text, Data: b}
}

// number returns the number of a message made by numbered.
func number(t *testing.T, m wsconn.Message) int {
	t.Helper()
	if len(m.Data) < 8 {
		t.Fatalf("message %q is not numbered", m.Data)
	}
	i, err := strconv.Atoi(string(m.Data[:8]))
	if err != nil {
		t.Fatalf("message %q is not numbered", m.Data[:8])
	}
	return i
}

func expectNumber(t *testing.T, ctx context.Context, c *wsconn.Conn, want int) {
	t.Helper()
	m, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v (waiting for message %d)", err, want)
	}
	if got := number(t, m); got != want {
		t.Fatalf("got message %d, want %d", got, want)
	}
}

func expectText(t *testing.T, ctx context.Context, c *wsconn.Conn, want string) {
	t.Helper()
	m, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v (waiting for %q)", err, want)
	}
	if m.Type != wsconn.Text || string(m.Data) != want {
		t.Fatalf("got %v %q, want text %q", m.Type, m.Data, want)
	}
}

func text(s string) wsconn.Message { return wsconn.Message{Type: wsconn.Text, Data: []byte(s)} }

// recv waits for a value from ch, bounded by ctx.
func recv[T any](t *testing.T, ctx context.Context, ch <-chan T) T {
	t.Helper()
	return wstest.Recv(t, ctx, ch)
}
