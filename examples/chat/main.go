// Command chat is a broadcast chat room: a web page and a WebSocket
// endpoint served by one program.
//
//	go run ./examples/chat
//
// then open http://127.0.0.1:8080/ in two browser windows (add ?name=alice
// to choose a name). Everything a user writes is shown to everyone in the
// room, with join and leave notices and the list of who is online.
//
// The page (static/, embedded in the binary with embed) talks JSON over
// the WebSocket at /ws?name=NAME. The server fans messages out with the
// broadcast recipe (recipes/broadcast): every connection has a bounded
// queue of outgoing messages, and a user whose browser cannot keep up
// misses the oldest ones instead of slowing down the room. Messages are
// encoded with the jsonmsg recipe (recipes/jsonmsg).
//
// Each connection's handler is a nursery of two or three tasks: the
// subscriber that writes the room's messages to the browser, the loop that
// reads what the user writes, and with -heartbeat a heartbeat that drops
// browsers that stop answering pings (browsers answer pings on their own).
// When one of them ends, the others are cancelled and the user leaves.
//
// SIGINT or SIGTERM closes every connection with 1001 (going away) and
// stops the server.
//
// # A cluster of chat processes
//
// With -nats, every chat process on that NATS (with the same -nats-prefix)
// serves one shared room: run several behind a load balancer, or on
// different ports, and a user on one node talks with the users of every
// node. The room's messages go through the NATS broker
// (recipes/broadcast/natsbroker), and the users list in welcome, join and
// leave covers every node. A node that dies without saying goodbye drops
// out of the others' lists within about 12 s, and its users are announced
// as having left (and as joining again, should the node come back). If NATS is unreachable the node still serves its own
// users, logs a warning, and rejoins the others when NATS is back; the
// broker's package documentation says what is lost meanwhile. The page and
// its WebSocket protocol are the same with and without -nats.
//
//	go run github.com/nats-io/nats-server/v2@v2.15.3 -a 127.0.0.1 &   # NATS on 127.0.0.1:4222 only
//	go run ./examples/chat -addr 127.0.0.1:8080 -nats nats://127.0.0.1:4222 &
//	go run ./examples/chat -addr 127.0.0.1:8081 -nats nats://127.0.0.1:4222
//
// (nats-server listens on every interface unless -a says otherwise.)
// Ctrl-C stops the chat in the foreground; kill %2 %1 (or kill $(jobs -p))
// stops the background chat and NATS.
//
// Flags:
//
//	-addr HOST:PORT        address to listen on (default 127.0.0.1:8080)
//	-heartbeat[=T,I]       ping every browser each I and drop it if a pong takes longer than T
//	-nats URL[,URL...]     join the room shared over NATS by every chat on these servers
//	-nats-creds FILE       NATS credentials file (user JWT and seed); user, password,
//	                       token and tls:// go in the URLs
//	-nats-prefix PREFIX    subject prefix, to share one NATS with other rooms or apps
//	                       (default wsnursery-chat)
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"

	"github.com/wsnursery/wsnursery/examples/internal/cliflag"
	"github.com/wsnursery/wsnursery/heartbeat"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/recipes/broadcast"
	"github.com/wsnursery/wsnursery/recipes/broadcast/natsbroker"
	"github.com/wsnursery/wsnursery/recipes/jsonmsg"
	"github.com/wsnursery/wsnursery/wsconn"
)

//go:embed static
var static embed.FS

// Limits on what users send.
const (
	maxMessageSize = 4 << 10 // bytes per WebSocket message
	maxTextLen     = 1000    // characters per chat message
	maxNameLen     = 24      // characters per user name
)

// shutdownTimeout bounds the graceful shutdown.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // a second signal kills at once

	err := run(ctx, os.Args[1:], os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage error")

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (port 0 picks a free port)")
	var hb cliflag.Heartbeat
	fs.Var(&hb, "heartbeat", "ping browsers: `TIMEOUT,INTERVAL`, or no value for 1s,15s")
	natsURLs := fs.String("nats", "", "join the room shared over NATS: `URL[,URL...]` of NATS servers")
	creds := fs.String("nats-creds", "", "NATS credentials `FILE`")
	prefix := fs.String("nats-prefix", "wsnursery-chat", "NATS subject `PREFIX` of the room")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chat: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if *natsURLs == "" && *creds != "" {
		fmt.Fprintln(stderr, "chat: -nats-creds without -nats")
		return errUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	opts := &options{heartbeat: hb, log: log, natsPrefix: *prefix}
	if *natsURLs != "" {
		nc, err := dialNATS(*natsURLs, *creds, log)
		if err != nil {
			return err
		}
		defer nc.Close()
		opts.nats = nc
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("failed to listen: %w", err)
	}
	log.Info("chat room open", "url", "http://"+ln.Addr().String()+"/")
	return serve(ctx, ln, opts)
}

// dialNATS connects to NATS, logging the connection's ups and downs. An
// unreachable NATS is not an error: the chat serves its own users and the
// connection keeps trying.
func dialNATS(urls, creds string, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("wsnursery chat"),
		nats.ConnectHandler(func(nc *nats.Conn) { log.Info("connected to NATS", "server", nc.ConnectedUrlRedacted()) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted()) }),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if !nc.IsClosed() {
				log.Warn("disconnected from NATS: serving local users only until it is back", "err", err)
			}
		}),
	}
	if creds != "" {
		if _, err := os.Stat(creds); err != nil {
			return nil, fmt.Errorf("failed to read the NATS credentials: %w", err)
		}
		opts = append(opts, nats.UserCredentials(creds))
	}
	nc, err := natsbroker.Dial(urls, opts...)
	if err != nil {
		return nil, err
	}
	if !nc.IsConnected() {
		log.Warn("NATS unreachable: serving local users only, and retrying", "servers", redact(urls))
	}
	return nc, nil
}

// redact hides the credentials (user, password, token) in a list of NATS
// URLs, for the log.
func redact(urls string) string {
	list := strings.Split(urls, ",")
	for i, s := range list {
		if u, err := url.Parse(strings.TrimSpace(s)); err == nil && u.User != nil {
			u.User = url.User("REDACTED")
			list[i] = u.String()
		}
	}
	return strings.Join(list, ",")
}

// options configures serve.
type options struct {
	heartbeat  cliflag.Heartbeat
	log        *slog.Logger // nil: discard
	nats       *nats.Conn   // nil: a room of this process only
	natsPrefix string
	// onReport, if not nil, enables POST /test/report, through which the
	// page reports (in its test mode) that it received the message it was
	// told to expect. Tests only.
	onReport func(Report)
}

// Report is what the page posts to /test/report.
type Report struct {
	Name string `json:"name"` // who received
	From string `json:"from"` // who sent
	Text string `json:"text"`
}

// serve runs the chat on ln until ctx is cancelled, then closes every
// connection with 1001 and returns nil.
func serve(ctx context.Context, ln net.Listener, opts *options) error {
	log := opts.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hub := broadcast.NewHub(nil)
	room := &room{hub: hub, broker: hub, hb: opts.heartbeat, log: log}
	if opts.nats != nil {
		// The callbacks can fire before New returns (a node's answer to
		// this one's hello), and must see room.broker, not the hub: they
		// wait until it is set, which is as soon as New returns (New does
		// not wait for NATS).
		ready := make(chan struct{})
		b, err := natsbroker.New(hub, opts.nats, &natsbroker.Options{
			Prefix:         opts.natsPrefix,
			Logger:         log,
			OnNodeGone:     func(t string, gone []string) { <-ready; room.nodeGone(t, gone) },
			OnNodeAppeared: func(t string, names []string) { <-ready; room.nodeAppeared(t, names) },
		})
		if err != nil {
			return err // no callback can come: New started nothing
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			b.Close(cctx) // says goodbye: the other nodes drop this one at once
		}()
		room.mu.Lock()
		room.broker = b
		room.mu.Unlock()
		close(ready)
		log.Info("room shared over NATS", "node", b.NodeID(), "prefix", opts.natsPrefix)
	}
	ws := wsconn.NewServer(room.handle, &wsconn.ServerOptions{
		MaxMessageSize:    maxMessageSize,
		DisconnectTimeout: shutdownTimeout,
		Logger:            log,
		Compression:       wsconn.CompressionNoContextTakeover, // browsers offer permessage-deflate
	})
	page, err := fs.Sub(static, "static")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(page))
	mux.Handle("GET /ws", ws)
	if opts.onReport != nil {
		mux.HandleFunc("POST /test/report", func(w http.ResponseWriter, r *http.Request) {
			data, err := io.ReadAll(io.LimitReader(r.Body, maxMessageSize))
			var rep Report
			if err == nil {
				rep, err = jsonmsg.Decode[Report](wsconn.Message{Type: wsconn.Text, Data: data}, nil)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			opts.onReport(rep)
			w.WriteHeader(http.StatusNoContent)
		})
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}

	err = nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(func(ctx context.Context) error {
			<-ctx.Done()
			log.Info("shutting down: closing connections with 1001 (going away)")
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
			defer cancel()
			hs.Shutdown(sctx) // stops accepting; WebSocket connections are hijacked, so not waited for
			ws.Shutdown(sctx) // closes them with 1001 and waits for their handlers
			return nil
		})
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("failed to serve: %w", err)
		}
		<-ctx.Done() // Serve ended because the shutdown began
		return nil
	})
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		log.Info("chat room closed")
		return nil
	}
	return err
}

// topic is the room's topic on the hub and the broker.
const topic = "room"

// room is the chat room: a hub for this process's connections, and the
// broker the messages and the presence of users go through (the hub
// itself, or the NATS broker).
type room struct {
	hub *broadcast.Hub
	hb  cliflag.Heartbeat
	log *slog.Logger

	mu     sync.Mutex // serialises joins: a name is checked and taken at once
	broker broadcast.Broker
}

// event is every message the server sends to the page.
type event struct {
	Kind  string   `json:"kind"` // "welcome" (to the joiner only), "join", "leave" or "message"
	Name  string   `json:"name"` // the user concerned; for "welcome" the joiner's own (unique) name
	Text  string   `json:"text,omitempty"`
	Users []string `json:"users,omitempty"` // who is online, for welcome, join and leave
}

// post is what the page sends.
type post struct {
	Text string `json:"text"`
}

func (rm *room) handle(ctx context.Context, r *wsconn.Request) error {
	c, err := r.Accept(ctx, nil)
	if err != nil {
		return err
	}
	name, users, leave := rm.join(r.HTTPRequest.URL.Query().Get("name"))
	log := rm.log.With("name", name, "remote", r.RemoteAddr.String())
	log.Info("joined")

	// Subscribe before announcing the join, so that the joiner sees its
	// own join notice after the welcome.
	sub := rm.hub.SubscribeTo(topic, c)
	if err := jsonmsg.Send(ctx, c, event{Kind: "welcome", Name: name, Users: users}, nil); err != nil {
		sub.Unsubscribe()
		leave()
		return nil
	}
	rm.publish(event{Kind: "join", Name: name, Users: users})

	err = nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(func(ctx context.Context) error {
			if err := sub.Serve(ctx); err != nil {
				return err
			}
			// The connection closed: that ends the user's visit.
			return errLeft
		})
		if rm.hb.Enabled {
			n.Go(func(ctx context.Context) error {
				return heartbeat.Run(ctx, c, &heartbeat.Options{Timeout: rm.hb.Timeout, Interval: rm.hb.Interval})
			})
		}
		for {
			p, err := jsonmsg.Receive[post](ctx, c, &jsonmsg.Options{MaxSize: maxMessageSize})
			var bad *jsonmsg.DecodeError
			switch {
			case errors.As(err, &bad):
				log.Warn("ignored a message that is not a chat post", "err", err)
				continue
			case err != nil:
				return err
			}
			text := strings.TrimSpace(p.Text)
			if text == "" {
				continue
			}
			if r := []rune(text); len(r) > maxTextLen {
				text = string(r[:maxTextLen]) + "…"
			}
			rm.publish(event{Kind: "message", Name: name, Text: text})
		}
	})
	leave()
	rm.publish(event{Kind: "leave", Name: name, Users: rm.members()})
	if ctx.Err() != nil {
		err = context.Cause(ctx) // the connection closed, or the server is shutting down
	}
	var closed *wsconn.ConnectionClosedError
	if errors.As(err, &closed) {
		log.Info("left", "code", int(closed.Reason.Code), "reason", closed.Reason.Reason)
	} else {
		log.Info("left", "why", err)
	}
	return nil
}

// errLeft ends a visit whose connection has closed.
var errLeft = errors.New("left the room")

// publish sends ev to everyone in the room, on every node.
func (rm *room) publish(ev event) { rm.send(ev, true) }

// send encodes ev and publishes it through the broker, or with
// everywhere false on this node's hub only.
func (rm *room) send(ev event, everywhere bool) {
	m, err := jsonmsg.Encode(ev, nil)
	if err == nil {
		rm.mu.Lock()
		var b broadcast.Broker = rm.hub
		if everywhere {
			b = rm.broker
		}
		rm.mu.Unlock()
		err = b.PublishTo(topic, m)
	}
	if err != nil {
		rm.log.Error("failed to publish", "err", err)
	}
}

// join registers a user under a cleaned-up version of name, unique among
// the users of every node as far as this node knows, and returns that
// name, everyone online, and the function that ends the user's presence.
func (rm *room) join(name string) (string, []string, func()) {
	name = cleanName(name)
	rm.mu.Lock()
	defer rm.mu.Unlock()
	taken := rm.broker.Members(topic)
	unique := name
	for i := 2; slices.Contains(taken, unique); i++ {
		unique = name + "-" + strconv.Itoa(i)
	}
	leave := rm.broker.Join(topic, unique)
	return unique, rm.broker.Members(topic), leave
}

// members returns who is online, on every node.
func (rm *room) members() []string {
	rm.mu.Lock()
	b := rm.broker
	rm.mu.Unlock()
	return b.Members(topic)
}

// nodeGone announces, to this node's users, the users of another node that
// went away without saying goodbye (or that this node lost sight of during
// an outage). Every node does it for its own users.
func (rm *room) nodeGone(t string, gone []string) {
	if t != topic {
		return
	}
	for _, name := range gone {
		rm.log.Info("left with its node", "name", name)
		rm.send(event{Kind: "leave", Name: name, Users: rm.members()}, false)
	}
}

// nodeAppeared announces, to this node's users, the users of a node that
// this node hears from for the first time or again, after an outage.
func (rm *room) nodeAppeared(t string, names []string) {
	if t != topic {
		return
	}
	for _, name := range names {
		rm.log.Info("joined with its node", "name", name)
		rm.send(event{Kind: "join", Name: name, Users: rm.members()}, false)
	}
}

// cleanName keeps letters, digits, '-', '_' and '.', at most maxNameLen of
// them; an empty result becomes a random guest name.
func cleanName(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxNameLen {
			break
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_.", r) {
			b.WriteRune(r)
			n++
		}
	}
	if b.Len() == 0 {
		return "guest-" + strconv.Itoa(1000+rand.IntN(9000))
	}
	return b.String()
}
