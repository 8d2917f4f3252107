package wsconn_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
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

// wantRecord returns the debug record with message msg whose attributes
// include want (values as text), waiting for it up to 10 s.
func (r *logRecorder) wantRecord(t *testing.T, msg string, want map[string]string) logged {
	t.Helper()
	return r.waitFor(t, fmt.Sprintf("%q %v", msg, want), func(l logged) bool {
		if l.Level != slog.LevelDebug || l.Msg != msg {
			return false
		}
		for k, v := range want { // header keys as sent, so in any case
			if !strings.Contains(strings.ToLower(l.Attrs[k]), strings.ToLower(v)) {
				return false
			}
		}
		return true
	})
}

// With a Logger at Debug, both sides trace what websocket-client's
// enableTrace shows: the handshake headers (credentials redacted), each
// message, ping, pong and Close frame both ways; no payload bytes.
func TestTraceDebugRecords(t *testing.T) {
	serverLog, slogServer := newLogRecorder(slog.LevelDebug)
	clientLog, slogClient := newLogRecorder(slog.LevelDebug)
	url, stop := serveUntilDone(t, echo, &wsconn.ServerOptions{Logger: slogServer})
	session(t, url+"/traced", &wsconn.DialOptions{Logger: slogClient, Header: http.Header{"Authorization": {"Bearer secret"}}})
	if err := stop(); err != context.Canceled {
		t.Fatalf("Serve = %v", err)
	}

	c := clientLog
	c.wantRecord(t, "websocket dialing", map[string]string{"url": url + "/traced"})
	sent := c.wantRecord(t, "websocket handshake sent", map[string]string{"header": "Sec-Websocket-Key:["})
	if h := sent.Attrs["header"]; strings.Contains(h, "secret") || !strings.Contains(h, "Authorization:[[redacted]]") || !strings.Contains(h, "Sec-WebSocket-Version:[13]") {
		t.Errorf("handshake request header traced as %s, want Authorization redacted", h)
	}
	c.wantRecord(t, "websocket handshake response", map[string]string{"status": "101", "header": "Sec-Websocket-Accept:["})
	c.wantRecord(t, "websocket message sent", map[string]string{"type": "text", "len": "6"})
	c.wantRecord(t, "websocket message received", map[string]string{"type": "text", "len": "6"})
	c.wantRecord(t, "websocket ping sent", map[string]string{"len": "4"})
	c.wantRecord(t, "websocket pong received", map[string]string{"len": "4"})
	c.wantRecord(t, "websocket close sent", map[string]string{"code": "1000", "reason": "done"})
	c.wantRecord(t, "websocket close received", map[string]string{"code": "1000", "reason": "done"})
	c.wantRecord(t, "websocket connection closed", map[string]string{"code": "1000", "side": "client"})

	s := serverLog
	got := s.wantRecord(t, "websocket handshake received", map[string]string{"path": "/traced", "header": "Sec-Websocket-Key:["})
	if h := got.Attrs["header"]; strings.Contains(h, "secret") {
		t.Errorf("handshake request header traced as %s, want Authorization redacted", h)
	}
	s.wantRecord(t, "websocket handshake accepted", map[string]string{"status": "101", "header": "Sec-Websocket-Accept:["})
	s.wantRecord(t, "websocket message received", map[string]string{"type": "text", "len": "6"})
	s.wantRecord(t, "websocket message sent", map[string]string{"type": "text", "len": "6"})
	s.wantRecord(t, "websocket ping received", map[string]string{"len": "4"})
	s.wantRecord(t, "websocket pong sent", map[string]string{"len": "4"})
	s.wantRecord(t, "websocket close received", map[string]string{"code": "1000", "reason": "done"})
	s.wantRecord(t, "websocket close sent", map[string]string{"code": "1000", "reason": "done"})
	s.wantRecord(t, "websocket connection closed", map[string]string{"code": "1000", "side": "server"})

	for name, r := range map[string]*logRecorder{"client": clientLog, "server": serverLog} {
		for _, l := range r.records() {
			if l.Level != slog.LevelDebug {
				t.Errorf("%s: record %v: a normal session logs only at debug level", name, l)
			}
			if _, ok := l.Attrs["payload"]; ok {
				t.Errorf("%s: record %v carries a payload without TracePayloads", name, l)
			}
		}
	}
}

// TracePayloads adds the bytes: text as is, binary and ping payloads in
// hex, cut at 1 KiB.
func TestTracePayloads(t *testing.T) {
	logs, logger := newLogRecorder(slog.LevelDebug)
	url := serve(t, nil, echo, nil)
	c := dial(t, url, &wsconn.DialOptions{Logger: logger, TracePayloads: true})
	ctx := ctxTimeout(t, 10*time.Second)
	for _, m := range []wsconn.Message{{Type: wsconn.Text, Data: []byte("héllo")}, {Type: wsconn.Binary, Data: []byte{0xde, 0xad}}, {Type: wsconn.Binary, Data: make([]byte, 1500)}} {
		if err := c.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Receive(ctx); err != nil { // the echo
			t.Fatal(err)
		}
	}
	if err := c.Ping(ctx, []byte("p1")); err != nil {
		t.Fatal(err)
	}
	logs.wantRecord(t, "websocket message sent", map[string]string{"type": "text", "payload": "héllo"})
	logs.wantRecord(t, "websocket message received", map[string]string{"type": "binary", "len": "2", "payload": "dead"})
	big := logs.wantRecord(t, "websocket message sent", map[string]string{"len": "1500"})
	if want := strings.Repeat("00", 1024) + "…(476 more bytes)"; big.Attrs["payload"] != want {
		t.Errorf("payload of a 1500-byte message traced as %d characters, want the first 1 KiB in hex and a count", len(big.Attrs["payload"]))
	}
	logs.wantRecord(t, "websocket ping sent", map[string]string{"payload": "7031"})
	logs.wantRecord(t, "websocket pong received", map[string]string{"payload": "7031"})
}

// A nil Logger is never silent about failures: handler errors and panics
// go to slog.Default() at Error, refused handshakes at Warn. (Not
// parallel: it replaces the default logger.)
func TestNilLoggerReportsFailuresToDefault(t *testing.T) {
	defaultLog, slogDefault := newLogRecorder(slog.LevelInfo)
	old, oldOut, oldFlags := slog.Default(), log.Writer(), log.Flags()
	slog.SetDefault(slogDefault)
	t.Cleanup(func() {
		// slog.SetDefault pointed the log package at the recorder too;
		// restoring slog's default handler does not undo that.
		slog.SetDefault(old)
		log.SetOutput(oldOut)
		log.SetFlags(oldFlags)
	})

	url, stop := serveUntilDone(t, failingHandler(errors.New("handler exploded")), nil)
	ctx := ctxTimeout(t, 10*time.Second)
	for _, path := range []string{"/fail", "/panic"} {
		c := dial(t, url+path, nil)
		if _, err := c.Receive(ctx); !errors.Is(err, wsconn.ErrConnectionClosed) {
			t.Fatalf("Receive on %s = %v, want the 1011 close", path, err)
		}
	}
	httpURL := "http" + strings.TrimPrefix(url, "ws")
	resp, err := http.Get(httpURL + "/plain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := wsconn.Dial(ctx, url+"/foreign", &wsconn.DialOptions{Header: http.Header{"Origin": {"http://elsewhere.example"}}}); err == nil {
		t.Fatal("a foreign origin was accepted")
	}
	if err := stop(); err != context.Canceled {
		t.Fatalf("Serve = %v", err)
	}
	for _, want := range []struct {
		level slog.Level
		msg   string
		attrs map[string]string
	}{
		{slog.LevelError, "websocket handler failed", map[string]string{"path": "/fail", "err": "handler exploded"}},
		{slog.LevelError, "websocket handler panicked", map[string]string{"path": "/panic", "err": "kaboom"}},
		{slog.LevelWarn, "websocket handshake refused", map[string]string{"path": "/plain", "status": "400"}},
		{slog.LevelWarn, "websocket handshake refused", map[string]string{"path": "/foreign", "status": "403", "reason": "origin not allowed"}},
	} {
		defaultLog.waitFor(t, want.msg+" "+fmt.Sprint(want.attrs), func(l logged) bool {
			if l.Level != want.level || l.Msg != want.msg {
				return false
			}
			for k, v := range want.attrs {
				if !strings.Contains(l.Attrs[k], v) {
					return false
				}
			}
			return true
		})
	}
	for _, l := range defaultLog.records() {
		if l.Level < slog.LevelInfo {
			t.Errorf("debug record %v reached the default logger: tracing is opt-in", l)
		}
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

// Without a Logger a normal session writes nothing anywhere, not even to
// slog's or the log package's default logger: only failures are reported
// there (TestNilLoggerReportsFailuresToDefault), and tracing is opt-in.
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

// A dial that gets no response is traced too: the request's headers before
// dialing (credentials redacted) and the error.
func TestTraceDialWithoutResponse(t *testing.T) {
	ln := listen(t)
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		if conn, err := ln.Accept(); err == nil {
			conn.Close() // hangs up on the handshake
		}
	}()
	rec, logger := newLogRecorder(slog.LevelDebug)
	url := "ws://" + ln.Addr().String() + "/x"
	_, err := wsconn.Dial(ctxTimeout(t, 10*time.Second), url, &wsconn.DialOptions{
		Logger: logger, Header: http.Header{"Authorization": {"Bearer secret"}}})
	if err == nil {
		t.Fatal("Dial succeeded against a server that hangs up")
	}
	<-accepted
	d := rec.wantRecord(t, "websocket dialing", map[string]string{"url": url, "header": "Authorization:[[redacted]]"})
	if strings.Contains(d.Attrs["header"], "secret") {
		t.Errorf("dialing header traced as %s, want Authorization redacted", d.Attrs["header"])
	}
	// EOF, or a reset when the hang-up meets the request.
	if f := rec.wantRecord(t, "websocket dial failed", map[string]string{"url": url}); f.Attrs["err"] == "" {
		t.Error("dial failure traced without its error")
	}
}
