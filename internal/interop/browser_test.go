package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/internal/interop"
	"github.com/wsnursery/wsnursery/wsconn"
)

// chromiumFlags are the flags the brief fixes for a headless run that
// talks to nothing but the loopback test servers.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
}

// pageServer serves testdata/browser.html and collects the page's reports.
type pageServer struct {
	origin string
	events *interop.Events
}

func startPageServer(t *testing.T) *pageServer {
	t.Helper()
	html, err := os.ReadFile("testdata/browser.html")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps := &pageServer{origin: "http://" + ln.Addr().String(), events: interop.NewEvents()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(html)
	})
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var e interop.Event
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&e); err != nil {
			e = interop.Event{Event: "unparsed", Detail: err.Error()}
		}
		ps.events.Add(e)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("page server: %v", err)
		}
		ps.events.End(errors.New("page server stopped"))
	})
	return ps
}

// TestServerAgainstChromium drives headless Chromium's WebSocket object
// against our server from a page served over HTTP on 127.0.0.1.
func TestServerAgainstChromium(t *testing.T) {
	interop.Need(t, interop.HaveChromium())
	t.Parallel()
	page := startPageServer(t)
	s := startGoServer(t, &wsconn.ServerOptions{
		// The page is another origin (another port): allow exactly it.
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == page.origin },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	browser, stop := startChromium(t, ctx, page, s.url, "")
	defer stop()

	if _, err := page.events.Next(ctx, func(e interop.Event) bool { return e.Event == "done" }); err != nil {
		t.Fatalf("page did not finish: %v\nchromium stderr:\n%s", err, tail(browser.Stderr(), 2000))
	}
	stop()
	for _, e := range page.events.Unconsumed() {
		if e.Event == "error" || e.Event == "unparsed" {
			t.Errorf("page reported %s: %s", e.Event, e.Detail)
		}
	}
	// Handlers ran in the page's order.
	results := map[string]handled{}
	for range 6 {
		select {
		case h := <-s.results:
			results[h.scenario] = h
		case <-ctx.Done():
			t.Fatalf("handlers did not all report; got %v", results)
		}
	}
	event := func(t *testing.T, kind, scenario string) interop.Event {
		t.Helper()
		e, err := page.events.Next(ctx, is(kind, scenario))
		if err != nil {
			t.Fatalf("page did not report %s for %s: %v", kind, scenario, err)
		}
		return e
	}

	t.Run("echo", func(t *testing.T) {
		if h := results["echo"]; h.err != nil {
			t.Fatal(h.err)
		}
		if e := event(t, "closed", "echo"); e.Code != 1000 {
			t.Errorf("browser saw close %d %q, want 1000", e.Code, e.Reason)
		}
	})
	t.Run("ping", func(t *testing.T) {
		// The browser answers our ping; its API cannot send one itself.
		t.Log("browser → us ping not tested: the WebSocket API cannot send pings")
		if h := results["ping-only"]; h.err != nil {
			t.Fatal(h.err)
		}
		event(t, "closed", "ping-only")
	})
	t.Run("close-by-go", func(t *testing.T) {
		h := results["close-by-go"]
		if h.err != nil {
			t.Fatal(h.err)
		}
		e := event(t, "closed", "close-by-go")
		if e.Code != goCloseCode || e.Reason != goCloseReason {
			t.Errorf("browser saw close %d %q, want %d %q", e.Code, e.Reason, goCloseCode, goCloseReason)
		}
		wantReason(t, "our CloseReason after the browser's reply", h.reason, goCloseCode, goCloseReason)
	})
	t.Run("close-by-peer", func(t *testing.T) {
		h := results["close-by-peer"]
		if h.err != nil {
			t.Fatal(h.err)
		}
		wantReason(t, "Receive's error", h.closedErr.Reason, peerCloseCode, peerCloseReason)
		wantReason(t, "our CloseReason", h.reason, peerCloseCode, peerCloseReason)
		e := event(t, "closed", "close-by-peer")
		if e.Code != peerCloseCode || e.Reason != peerCloseReason {
			t.Errorf("browser saw our echo as %d %q, want %d %q", e.Code, e.Reason, peerCloseCode, peerCloseReason)
		}
	})
	t.Run("subprotocol", func(t *testing.T) {
		h := results["subprotocol"]
		if h.err != nil {
			t.Fatal(h.err)
		}
		if h.subprotocol != subprotocol || strings.Join(h.offered, ",") != strings.Join(offered, ",") {
			t.Errorf("offered %q, selected %q; want %q selected from %q", h.offered, h.subprotocol, subprotocol, offered)
		}
		if got := event(t, "open", "subprotocol").Subprotocol; got != subprotocol {
			t.Errorf("browser sees protocol %q, want %q", got, subprotocol)
		}
	})
	t.Run("reject", func(t *testing.T) {
		if h := results["reject"]; h.err != nil {
			t.Fatal(h.err)
		}
		t.Log("status, header and body not checked: the WebSocket API hides a rejected handshake's response")
		if e := event(t, "closed", "reject"); e.Code != 1006 || !strings.Contains(e.Detail, "error=true") {
			t.Errorf("browser saw %d (%s), want 1006 after an error event", e.Code, e.Detail)
		}
	})
}

// startChromium opens the page in headless Chromium against the WebSocket
// server at wsURL, running the page's scenarios (a comma-separated list,
// or "" for its default set). stop kills Chromium and every process it
// started; it is safe to call more than once.
func startChromium(t *testing.T, ctx context.Context, page *pageServer, wsURL, scenarios string) (browser *interop.Peer, stop func()) {
	t.Helper()
	// Everything Chromium writes goes below dir, whose path also marks its
	// processes: the crash handlers it starts leave its process group.
	dir := t.TempDir()
	target := page.origin + "/?ws=" + strings.TrimPrefix(wsURL, "ws://127.0.0.1:")
	if scenarios != "" {
		target += "&scenarios=" + scenarios
	}
	args := append(slices.Clone(chromiumFlags), "--user-data-dir="+filepath.Join(dir, "profile"), target)
	env := []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"), "XDG_CACHE_HOME=" + filepath.Join(dir, "cache")}
	browser, err := interop.Start(ctx, interop.Chromium, args, env)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	return browser, func() {
		if stopped {
			return
		}
		stopped = true
		browser.Stop(0)
		stragglers := processesMentioning(dir)
		for _, pid := range stragglers {
			syscall.Kill(pid, syscall.SIGKILL) // a crash handler outside the group
		}
		t.Logf("chromium killed with its process group and %d helper(s) outside it", len(stragglers))
		if left := processesMentioning(dir); len(left) > 0 {
			t.Errorf("chromium processes left after the kill: %v", left)
		}
	}
}

// processesMentioning returns the pids of live processes whose command line
// contains marker (a path unique to one test); zombies have none.
func processesMentioning(marker string) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/cmdline")
		if err != nil || !strings.Contains(string(b), marker) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("...%s", s[len(s)-n:])
}
