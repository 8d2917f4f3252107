package natsbroker_test

import (
	"context"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/wsnursery/wsnursery/internal/natstest"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/recipes/broadcast"
	"github.com/wsnursery/wsnursery/recipes/broadcast/natsbroker"
	"github.com/wsnursery/wsnursery/wsconn"
)

func TestMain(m *testing.M) {
	natstest.ServeIfChild()
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait in this package's tests.
const testTimeout = 30 * time.Second

func testCtx(t testing.TB) context.Context { return wstest.Context(t, testTimeout) }

// node is one node of a test cluster: a hub, its NATS broker, and a
// WebSocket server whose connections subscribe to the topic named in the
// URL's query (?topic=T).
type node struct {
	hub    *broadcast.Hub
	broker *natsbroker.Broker
	nc     *nats.Conn
	wsURL  string
	subs   chan *broadcast.Subscriber // each new subscriber
	served chan error                 // each Serve's result
}

// startNode starts a node on the NATS servers at natsURL (which need not
// be up). The node is stopped at the end of the test: broker closed, then
// the NATS connection and the WebSocket server.
func startNode(t testing.TB, natsURL string, opts *natsbroker.Options, hubOpts *broadcast.Options) *node {
	t.Helper()
	n := &node{hub: broadcast.NewHub(hubOpts), subs: make(chan *broadcast.Subscriber, 16), served: make(chan error, 16)}
	nc, err := natsbroker.Dial(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	n.nc = nc
	if n.broker, err = natsbroker.New(n.hub, nc, opts); err != nil {
		nc.Close()
		t.Fatal(err)
	}
	n.wsURL = serveHub(t, n.hub, n.subs, n.served)
	t.Cleanup(func() {
		n.stop(t)
		nc.Close()
	})
	return n
}

// serveHub runs a WebSocket server whose connections subscribe to hub, to
// the topic named in the URL's query (?topic=T), and returns its URL. Each
// subscriber goes to subs and its Serve's result to served, unless nil.
func serveHub(t testing.TB, hub *broadcast.Hub, subs chan<- *broadcast.Subscriber, served chan<- error) string {
	ln := wstest.SmallSendBuf(wstest.Listen(t))
	return wstest.Serve(t, ln, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		s := hub.SubscribeTo(r.HTTPRequest.URL.Query().Get("topic"), c)
		if subs != nil {
			subs <- s
		}
		return nursery.Run(ctx, func(ctx context.Context, nn *nursery.Nursery) error {
			nn.Go(func(ctx context.Context) error {
				err := s.Serve(ctx)
				if served != nil {
					served <- err
				}
				return nil
			})
			for {
				if _, err := c.Receive(ctx); err != nil {
					return nil
				}
			}
		})
	}, &wsconn.ServerOptions{DisconnectTimeout: 5 * time.Second}).URL
}

// stop closes the broker (saying goodbye).
func (n *node) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.broker.Close(ctx); err != nil && n.nc.IsConnected() {
		t.Errorf("Close: %v", err)
	}
}

// flush waits until the node's NATS server has its subscriptions (on one
// server; a cluster spreads them over routes later).
func (n *node) flush(t testing.TB) {
	t.Helper()
	if err := n.nc.FlushTimeout(testTimeout); err != nil {
		t.Fatal(err)
	}
}

// subscribe connects a client to the node's topic and waits until it is
// subscribed.
func (n *node) subscribe(t testing.TB, ctx context.Context, topic string, opts *wsconn.DialOptions) *wsconn.Conn {
	t.Helper()
	c := wstest.Dial(t, ctx, n.wsURL+"?topic="+url.QueryEscape(topic), opts)
	wstest.Recv(t, ctx, n.subs)
	return c
}

func text(s string) wsconn.Message { return wsconn.Message{Type: wsconn.Text, Data: []byte(s)} }

func numbered(i int) wsconn.Message { return text(strconv.Itoa(i)) }

func publish(t testing.TB, b broadcast.Broker, topic string, m wsconn.Message) {
	t.Helper()
	if err := b.PublishTo(topic, m); err != nil {
		t.Fatal(err)
	}
}

func expectText(t testing.TB, ctx context.Context, c *wsconn.Conn, want string) {
	t.Helper()
	m, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v (waiting for %q)", err, want)
	}
	if m.Type != wsconn.Text || string(m.Data) != want {
		t.Fatalf("got %v %q, want text %q", m.Type, m.Data, want)
	}
}

// eventually polls cond until it holds, failing the test when ctx ends.
// For state that changes with no event to wait on (another node's presence
// arriving over NATS).
func eventually(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// resumeWithin publishes probes from `from` on topic every 50 ms until the
// client c (a subscriber of topic on another node) receives one of them,
// and fails the test if that takes longer than limit. Each call's probes
// carry a prefix of their own, so a late probe of an earlier call does not
// count. It returns how long it took, and what else c received before the
// probe (late probes of earlier calls left out). Probes in flight after
// the first may still arrive at c.
func resumeWithin(t testing.TB, ctx context.Context, from broadcast.Broker, topic string, c *wsconn.Conn, limit time.Duration) (time.Duration, []string) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	prefix := "probe " + strconv.FormatInt(probes.Add(1), 10) + " "
	type result struct {
		others []string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		var r result
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				r.err = err
				break
			}
			s := string(m.Data)
			if strings.HasPrefix(s, prefix) {
				break
			}
			if !strings.HasPrefix(s, "probe ") {
				r.others = append(r.others, s)
			}
		}
		got <- r
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		publish(t, from, topic, text(prefix+strconv.Itoa(i)))
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatalf("cross-node delivery did not resume within %v: %v", limit, r.err)
			}
			return time.Since(start), r.others
		case <-tick.C:
		}
	}
}

// probes numbers resumeWithin's calls.
var probes atomic.Int64

// logRecords collects a logger's records.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
	new  chan struct{}
}

func newLogRecords() *logRecords { return &logRecords{new: make(chan struct{}, 1)} }

func (l *logRecords) logger() *slog.Logger { return slog.New(l) }

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r.Clone())
	l.mu.Unlock()
	select {
	case l.new <- struct{}{}:
	default:
	}
	return nil
}

// count returns how many records have level and message msg.
func (l *logRecords) count(level slog.Level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level == level && r.Message == msg {
			n++
		}
	}
	return n
}
