package wsconn_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// logged is one record a logRecorder kept, attributes flattened to text.
type logged struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

func (l logged) String() string { return fmt.Sprintf("%v %q %v", l.Level, l.Msg, l.Attrs) }

// logRecorder keeps the records of a slog.Logger at or above level and
// lets a test wait for one.
type logRecorder struct {
	level   slog.Level
	mu      sync.Mutex
	recs    []logged
	changed chan struct{} // closed and replaced on every record
}

func newLogRecorder(level slog.Level) (*logRecorder, *slog.Logger) {
	r := &logRecorder{level: level, changed: make(chan struct{})}
	return r, slog.New(&recordHandler{r: r})
}

func (r *logRecorder) records() []logged {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

// waitFor returns the first record that match accepts, waiting up to 10 s.
func (r *logRecorder) waitFor(t *testing.T, what string, match func(logged) bool) logged {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		for _, l := range r.recs {
			if match(l) {
				r.mu.Unlock()
				return l
			}
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no %s record within 10s; got:\n%s", what, r.dump())
		}
	}
}

func (r *logRecorder) dump() string {
	var b strings.Builder
	for _, l := range r.records() {
		b.WriteString(l.String())
		b.WriteByte('\n')
	}
	return b.String()
}

type recordHandler struct {
	r      *logRecorder
	attrs  []slog.Attr
	prefix string
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.r.level }

func (h *recordHandler) Handle(_ context.Context, rec slog.Record) error {
	l := logged{Level: rec.Level, Msg: rec.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		l.Attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		l.Attrs[h.prefix+a.Key] = a.Value.String()
		return true
	})
	h.r.mu.Lock()
	h.r.recs = append(h.r.recs, l)
	close(h.r.changed)
	h.r.changed = make(chan struct{})
	h.r.mu.Unlock()
	return nil
}

func (h *recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = slices.Clone(h.attrs)
	for _, a := range as {
		a.Key = h.prefix + a.Key
		c.attrs = append(c.attrs, a)
	}
	return &c
}

func (h *recordHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

// msgHas matches debug records whose message contains any of words.
func msgHas(words ...string) func(logged) bool {
	return func(l logged) bool {
		if l.Level != slog.LevelDebug {
			return false
		}
		msg := strings.ToLower(l.Msg)
		for _, w := range words {
			if strings.Contains(msg, w) {
				return true
			}
		}
		return false
	}
}

// session dials url, exchanges a message, pings and closes.
func session(t *testing.T, url string, opts *wsconn.DialOptions) {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	c, err := wsconn.Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendText(ctx, "traced"); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Receive(ctx); err != nil || string(m.Data) != "traced" {
		t.Fatalf("Receive = %q, %v", m.Data, err)
	}
	if err := c.Ping(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx, wsconn.StatusNormalClosure, "done"); err != nil {
		t.Fatal(err)
	}
}

// serveUntilDone runs a Server on loopback and returns its URL and a stop
// function that shuts it down and waits for Serve to return.
func serveUntilDone(t *testing.T, h wsconn.Handler, opts *wsconn.ServerOptions) (url string, stop func() error) {
	t.Helper()
	ln := listen(t)
	srv := wsconn.NewServer(h, opts)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-errc
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return "ws://" + ln.Addr().String(), stop
}

// With a Logger, handshakes, frames and closes are traced at debug level,
// on both sides.
func TestTraceDebugRecords(t *testing.T) {
	serverLog, slogServer := newLogRecorder(slog.LevelDebug)
	clientLog, slogClient := newLogRecorder(slog.LevelDebug)
	url, _ := serveUntilDone(t, echo, &wsconn.ServerOptions{Logger: slogServer})
	session(t, url+"/traced", &wsconn.DialOptions{Logger: slogClient})

	for _, side := range []struct {
		name string
		log  *logRecorder
		hs   []string
	}{
		{"client", clientLog, []string{"dial", "open", "handshake"}},
		{"server", serverLog, []string{"accept", "handshake", "upgrade"}},
	} {
		t.Run(side.name, func(t *testing.T) {
			side.log.waitFor(t, "handshake", msgHas(side.hs...))
			side.log.waitFor(t, "message sent", msgHas("sent", "send", "writ"))
			side.log.waitFor(t, "message received", msgHas("received", "receiv", "read"))
			side.log.waitFor(t, "close", msgHas("clos"))
			if side.name == "client" {
				side.log.waitFor(t, "pong", msgHas("pong", "ping"))
			}
			for _, l := range side.log.records() {
				if l.Level != slog.LevelDebug {
					t.Errorf("record %v: a normal session logs only at debug level", l)
				}
			}
		})
	}
}

// A Logger at Info level hears nothing below Error from a normal session:
// the traces are all debug records.
func TestTraceSilentAtInfo(t *testing.T) {
	serverLog, slogServer := newLogRecorder(slog.LevelInfo)
	clientLog, slogClient := newLogRecorder(slog.LevelInfo)
	url, stop := serveUntilDone(t, echo, &wsconn.ServerOptions{Logger: slogServer})
	session(t, url, &wsconn.DialOptions{Logger: slogClient})
	if err := stop(); err != nil && err != context.Canceled {
		t.Fatalf("Serve = %v", err)
	}
	for name, r := range map[string]*logRecorder{"client": clientLog, "server": serverLog} {
		for _, l := range r.records() {
			if l.Level < slog.LevelError {
				t.Errorf("%s logged %v during a normal session", name, l)
			}
		}
	}
}

// Without a Logger nothing is written anywhere, not even to slog's or the
// log package's default logger.
func TestTraceNilLoggerIsSilent(t *testing.T) {
	defaultLog, slogDefault := newLogRecorder(slog.LevelDebug)
	oldSlog, oldOut, oldFlags := slog.Default(), log.Writer(), log.Flags()
	slog.SetDefault(slogDefault)
	t.Cleanup(func() {
		slog.SetDefault(oldSlog)
		log.SetOutput(oldOut)
		log.SetFlags(oldFlags)
	})
	url, stop := serveUntilDone(t, echo, nil)
	session(t, url, nil)
	if err := stop(); err != nil && err != context.Canceled {
		t.Fatalf("Serve = %v", err)
	}
	if recs := defaultLog.records(); len(recs) > 0 {
		t.Fatalf("the default loggers got records:\n%s", defaultLog.dump())
	}
}
