package reconnect_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsnursery/wsnursery/internal/pipenet"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/wsconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipeServer runs a wsconn.Server on an in-memory listener, for use inside
// a synctest bubble. stop shuts it down and checks how Serve ended; the end
// of the test does too.
func pipeServer(t *testing.T, h wsconn.Handler) (ln *pipenet.Listener, stop func()) {
	t.Helper()
	ln = pipenet.Listen()
	return ln, wstest.Serve(t, ln, h, &wsconn.ServerOptions{DisconnectTimeout: 5 * time.Second}).Stop
}

// dialPipe returns an Options.Dial that dials ln, failing instead for the
// attempts whose index is in fail, and records the time of every attempt.
func dialPipe(ln *pipenet.Listener, times *[]time.Time, fail map[int]bool) func(context.Context, string, *wsconn.DialOptions) (*wsconn.Conn, error) {
	return func(ctx context.Context, url string, _ *wsconn.DialOptions) (*wsconn.Conn, error) {
		i := len(*times)
		*times = append(*times, time.Now())
		if fail[i] || ln == nil {
			return nil, errRefused
		}
		return wsconn.Dial(ctx, url, &wsconn.DialOptions{NetDialContext: ln.Dial, DisconnectTimeout: 5 * time.Second})
	}
}

var errRefused = errors.New("connection refused (fake)")

// gaps returns the time between consecutive attempts.
func gaps(times []time.Time) []time.Duration {
	var d []time.Duration
	for i := 1; i < len(times); i++ {
		d = append(d, times[i].Sub(times[i-1]))
	}
	return d
}

// receiveAll is a session that reads until the connection fails.
func receiveAll(ctx context.Context, c *wsconn.Conn) error {
	for {
		if _, err := c.Receive(ctx); err != nil {
			return err
		}
	}
}
