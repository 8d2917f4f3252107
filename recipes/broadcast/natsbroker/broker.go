package natsbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"

	"github.com/wsnursery/wsnursery/recipes/broadcast"
	"github.com/wsnursery/wsnursery/wsconn"
)

// Defaults for Options.
const (
	DefaultPrefix            = "wsnursery"
	DefaultOutboxSize        = 4096
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultPresenceExpiry    = 10 * time.Second
)

// Options configures a Broker. A nil *Options means defaults.
type Options struct {
	// Prefix starts every subject the broker uses, so that several
	// applications can share one NATS: messages go on Prefix+".msg" and
	// presence on Prefix+".presence". Only brokers with the same prefix
	// hear each other. It is one or more dot-separated tokens, none empty,
	// without spaces, control characters, '*' or '>' (New rejects other
	// prefixes). Default "wsnursery".
	Prefix string
	// NodeID names this node in the envelopes it sends; it must be unique
	// among the nodes sharing the prefix. Default: 16 random hex digits.
	NodeID string
	// OutboxSize is how many messages may wait for the goroutine that hands
	// them to NATS. When it is full, PublishTo still delivers locally and
	// the cross-node copy is dropped (counted in Stats.Dropped, logged).
	// Default 4096.
	OutboxSize int
	// HeartbeatInterval is how often the node publishes its presence even
	// when nothing changed. Default 2 s.
	HeartbeatInterval time.Duration
	// PresenceExpiry is how long a node's presence lasts without a
	// heartbeat: a node killed without saying goodbye leaves the others'
	// Members within PresenceExpiry + HeartbeatInterval. It must be at
	// least twice HeartbeatInterval, so that one late heartbeat does not
	// end a live node's presence (New rejects a shorter one). Default 10 s,
	// so 12 s with the default interval.
	PresenceExpiry time.Duration
	// OnNodeGone, if not nil, is called when another node's presence ends,
	// by its goodbye or by expiry, once per topic with the members that
	// are no longer present on any node, so that the application can
	// announce that they left (on its own hub: every node makes the call
	// itself). It runs on one of the broker's goroutines and must not
	// block. OnNodeGone and OnNodeAppeared are never called concurrently,
	// and the calls come in the order of the presence changes they report.
	OnNodeGone func(topic string, gone []string)
	// OnNodeAppeared, if not nil, is called when another node's presence
	// begins: the first time this node hears from it, or again after its
	// presence had ended (say, after an outage longer than
	// PresenceExpiry). It is called once per topic with the node's members
	// that no other node had, so that the application can announce them
	// (members who join later are announced by their own node's messages).
	// A node is first heard of by its whole presence (a heartbeat, or its
	// answer to a hello; a change alone does not count), so the call lists
	// all its members. It runs on one of the broker's goroutines and must
	// not block.
	OnNodeAppeared func(topic string, members []string)
	// Logger receives the broker's warnings: dropped messages, malformed
	// messages on its subjects. Default: discard.
	Logger *slog.Logger
}

// Stats are a broker's counters, over its life.
type Stats struct {
	Sent      uint64 // messages handed to NATS
	Received  uint64 // messages from other nodes delivered to the hub
	Dropped   uint64 // cross-node copies not handed to NATS (outbox full, or NATS refused them), and messages from other nodes that nats.go dropped because this node did not keep up (a slow consumer)
	Malformed uint64 // messages on the broker's subjects that were not ours, dropped
}

// Broker is a broadcast.Broker over NATS; see the package documentation
// for its delivery contract. Create one with New.
type Broker struct {
	hub  *broadcast.Hub
	nc   *nats.Conn
	opts Options
	log  *slog.Logger

	msgSubject, presSubject string

	local  *broadcast.Presence
	outbox chan item

	sub *nats.Subscription

	closeOnce sync.Once
	closing   chan struct{} // closed by Close: run drains and says goodbye
	done      chan struct{} // closed when run has returned

	// pubMu is held across a publish's local delivery and its enqueueing
	// (neither blocks), so that two goroutines publishing at once put
	// their messages on the outbox in the order the hub delivered them,
	// and by Close when it sets closed, so that whatever was enqueued
	// before is drained and nothing is enqueued after.
	pubMu  sync.Mutex
	closed atomic.Bool // set under pubMu: PublishTo and Join stop forwarding

	// stateMu serializes the changes of other nodes' presence (onPresence
	// on nats.go's goroutine, expire on run's) with the callbacks that
	// report them, so the callbacks come in the order of the changes.
	stateMu sync.Mutex

	mu     sync.Mutex // guards remote
	remote map[string]*node

	sent, received, dropped, malformed atomic.Uint64
	subDropped                         atomic.Uint64 // what nats.go dropped of sub, as last seen
	warn                               warner
}

// node is what this broker knows of another node's presence.
type node struct {
	topics map[string][]string
	seen   time.Time
}

// item is one entry of the outbox: a message to forward, or (m.Type 0) a
// change of this node's presence in topic, or with full set this node's
// whole presence.
type item struct {
	topic string
	m     wsconn.Message
	full  bool
}

// New starts a broker that links hub to the other nodes on nc. Messages
// published through it reach hub at once and the other nodes through NATS;
// messages from the other nodes are delivered to hub. The caller keeps
// ownership of nc (see Dial for the options the contract assumes) and
// closes it after Close.
//
// New subscribes to the broker's subjects and starts the broker's
// goroutine, which runs until Close; it does not wait for NATS, which may
// be unreachable at first if nc was made with nats.RetryOnFailedConnect.
func New(hub *broadcast.Hub, nc *nats.Conn, opts *Options) (*Broker, error) {
	b := &Broker{hub: hub, nc: nc, closing: make(chan struct{}), done: make(chan struct{}), remote: map[string]*node{}}
	if opts != nil {
		b.opts = *opts
	}
	if b.opts.Prefix == "" {
		b.opts.Prefix = DefaultPrefix
	}
	if b.opts.NodeID == "" {
		b.opts.NodeID = randomID()
	}
	if len(b.opts.NodeID) > 255 {
		return nil, errors.New("failed to start the NATS broker: NodeID is longer than 255 bytes")
	}
	if err := checkPrefix(b.opts.Prefix); err != nil {
		return nil, fmt.Errorf("failed to start the NATS broker: Prefix %q: %w", b.opts.Prefix, err)
	}
	if b.opts.OutboxSize <= 0 {
		b.opts.OutboxSize = DefaultOutboxSize
	}
	if b.opts.HeartbeatInterval <= 0 {
		b.opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if b.opts.PresenceExpiry <= 0 {
		b.opts.PresenceExpiry = DefaultPresenceExpiry
	}
	if b.opts.PresenceExpiry < 2*b.opts.HeartbeatInterval {
		return nil, fmt.Errorf("failed to start the NATS broker: PresenceExpiry %v is less than twice HeartbeatInterval %v: one late heartbeat would end a live node's presence", b.opts.PresenceExpiry, b.opts.HeartbeatInterval)
	}
	b.log = b.opts.Logger
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.log = b.log.With("node", b.opts.NodeID)
	b.warn.log = b.log
	b.msgSubject = b.opts.Prefix + ".msg"
	b.presSubject = b.opts.Prefix + ".presence"
	b.outbox = make(chan item, b.opts.OutboxSize)
	b.local = broadcast.NewPresence(func(topic string) { b.enqueue(item{topic: topic}) })

	// One subscription for both subjects: nats.go delivers it on one
	// goroutine, in the order each node published, so another node's
	// presence change is recorded before the messages it published after
	// it are delivered (a user's join notice finds the user in Members).
	var err error
	if b.sub, err = nc.Subscribe(b.opts.Prefix+".*", b.onNATS); err != nil {
		return nil, fmt.Errorf("failed to subscribe to %s.*: %w", b.opts.Prefix, err)
	}
	go b.run()
	return b, nil
}

// checkPrefix reports why prefix cannot start the broker's subjects.
func checkPrefix(prefix string) error {
	for tok := range strings.SplitSeq(prefix, ".") {
		switch {
		case tok == "":
			return errors.New("empty token (a leading, trailing or doubled '.')")
		case strings.ContainsAny(tok, "*>"):
			return errors.New("wildcard '*' or '>' in a subject prefix")
		case strings.ContainsFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
			return errors.New("space or control character in a subject prefix")
		}
	}
	return nil
}

func randomID() string {
	var id [8]byte
	rand.Read(id[:])
	return hex.EncodeToString(id[:])
}

// NodeID returns the broker's node id.
func (b *Broker) NodeID() string { return b.opts.NodeID }

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	b.checkSlow()
	return Stats{Sent: b.sent.Load(), Received: b.received.Load(), Dropped: b.dropped.Load() + b.subDropped.Load(), Malformed: b.malformed.Load()}
}

// checkSlow notices the messages nats.go dropped from the subscription
// because this node did not keep up (nats.ErrSlowConsumer), and warns.
// nats.go reports them to the connection's error handler, which belongs
// to the application, so the broker reads the subscription's count.
func (b *Broker) checkSlow() {
	n, err := b.sub.Dropped()
	if err != nil {
		return // unsubscribed: the last count stays
	}
	for {
		last := b.subDropped.Load()
		if uint64(n) <= last {
			return
		}
		if b.subDropped.CompareAndSwap(last, uint64(n)) {
			b.warn.warn("slow consumer", "NATS dropped messages from the other nodes: this node did not keep up", "err", nats.ErrSlowConsumer, "dropped", uint64(n)-last)
			return
		}
	}
}

// PublishTo delivers m to topic's subscribers on this node's hub at once,
// and queues it for the other nodes; it never waits for NATS. It returns an
// error, and delivers nothing, for a message the hub rejects or a topic
// longer than 65,535 bytes. After Close it delivers locally only.
func (b *Broker) PublishTo(topic string, m wsconn.Message) error {
	if len(topic) > maxTopicLen {
		return fmt.Errorf("failed to publish: topic is %d bytes, more than %d", len(topic), maxTopicLen)
	}
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	if err := b.hub.PublishTo(topic, m); err != nil {
		return err
	}
	b.enqueueLocked(item{topic: topic, m: m})
	return nil
}

// enqueue hands it to run without waiting; a full outbox drops it.
func (b *Broker) enqueue(it item) {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	b.enqueueLocked(it)
}

// enqueueLocked is enqueue with pubMu held.
func (b *Broker) enqueueLocked(it item) {
	if b.closed.Load() {
		return
	}
	select {
	case b.outbox <- it:
	default:
		b.dropped.Add(1)
		b.warn.warn("dropped", "outbox full: a message or presence change was not sent to the other nodes", "outbox", b.opts.OutboxSize)
	}
}

// Join records member as present in topic on this node, for every node to
// see, until leave is called.
func (b *Broker) Join(topic, member string) (leave func()) { return b.local.Join(topic, member) }

// Members returns who is present in topic on this node and on every other
// node whose presence has not expired, sorted, each once. After Close it
// returns this node's members only.
func (b *Broker) Members(topic string) []string {
	if b.closed.Load() {
		return b.local.Members(topic)
	}
	return b.membersExcept(topic, "")
}

// membersExcept is Members without the node skip.
func (b *Broker) membersExcept(topic, skip string) []string {
	set := map[string]struct{}{}
	for _, m := range b.local.Members(topic) {
		set[m] = struct{}{}
	}
	b.mu.Lock()
	for id, n := range b.remote {
		if id == skip {
			continue
		}
		for _, m := range n.topics[topic] {
			set[m] = struct{}{}
		}
	}
	b.mu.Unlock()
	return slices.Sorted(maps.Keys(set))
}

// Close stops forwarding, sends what is still in the outbox and a goodbye
// that removes this node's presence from the others at once, flushes, and
// unsubscribes. ctx bounds the sending; Close returns ctx's error if it ran
// out; the broker's goroutine then ends as soon as NATS takes or refuses
// its last message (closing nc makes it refuse). The hub keeps serving its
// local subscribers, and nc stays open. Every message PublishTo accepted
// before Close is sent (or counted in Stats.Dropped); after Close,
// PublishTo delivers locally only and Members returns this node's members
// only. Close is idempotent.
func (b *Broker) Close(ctx context.Context) error {
	b.closeOnce.Do(func() {
		b.pubMu.Lock()
		b.closed.Store(true)
		b.pubMu.Unlock()
		close(b.closing)
	})
	var err error
	select {
	case <-b.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if b.nc.IsConnected() {
		if ferr := b.nc.FlushWithContext(ctx); ferr != nil && err == nil {
			err = fmt.Errorf("failed to flush to NATS: %w", ferr)
		}
	}
	b.checkSlow()
	b.sub.Unsubscribe()
	return err
}

// run is the broker's one goroutine: it hands the outbox to NATS in order,
// publishes heartbeats and expires silent nodes.
func (b *Broker) run() {
	defer close(b.done)
	tick := time.NewTicker(b.opts.HeartbeatInterval)
	defer tick.Stop()
	b.sendPresence(nil, kindHello)
	reconnects := b.nc.Stats().Reconnects
	for {
		select {
		case it := <-b.outbox:
			b.send(it)
		case <-tick.C:
			b.checkSlow()
			b.expire()
			kind := kindBeat
			if r := b.nc.Stats().Reconnects; r != reconnects {
				reconnects, kind = r, kindHello // we were away: ask for the others' state
			}
			b.sendPresence(nil, kind)
		case <-b.closing:
		drain:
			for {
				select {
				case it := <-b.outbox:
					b.send(it)
				default:
					break drain
				}
			}
			b.sendPresence(nil, kindBye)
			return
		}
	}
}

func (b *Broker) send(it item) {
	if it.full {
		b.sendPresence(nil, kindBeat)
		return
	}
	if it.m.Type == 0 {
		b.sendPresence([]string{it.topic}, kindChange)
		return
	}
	b.publish(b.msgSubject, encodeMessage(b.opts.NodeID, it.topic, it.m))
}

func (b *Broker) publish(subject string, data []byte) {
	if err := b.nc.Publish(subject, data); err != nil {
		b.dropped.Add(1)
		b.warn.warn("dropped", "NATS refused a message for the other nodes", "err", err)
		return
	}
	b.sent.Add(1)
}

// sendPresence publishes this node's members of topics (all topics if nil).
func (b *Broker) sendPresence(topics []string, kind presenceKind) {
	p := presenceMsg{Node: b.opts.NodeID, Kind: kind}
	if kind != kindBye {
		all := b.local.Topics()
		if topics == nil {
			p.Topics = all
		} else {
			p.Topics = make(map[string][]string, len(topics))
			for _, t := range topics {
				p.Topics[t] = all[t] // nil: nobody left in t
			}
		}
	}
	b.publish(b.presSubject, encodePresence(p))
}

// onNATS handles what arrives on the prefix's subjects. It runs on the
// subscription's nats.go goroutine; the hub never blocks it.
func (b *Broker) onNATS(msg *nats.Msg) {
	switch msg.Subject {
	case b.msgSubject:
		b.onMessage(msg)
	case b.presSubject:
		b.onPresence(msg)
	default:
		b.malformed.Add(1)
		b.warn.warn("malformed", "dropped a message on a subject that is not ours", "subject", msg.Subject, "size", len(msg.Data))
	}
}

// onMessage delivers another node's message to the hub.
func (b *Broker) onMessage(msg *nats.Msg) {
	env, err := decodeMessage(msg.Data)
	if err == nil && env.node != b.opts.NodeID {
		err = broadcast.CheckMessage(env.m)
	}
	if err != nil {
		b.malformed.Add(1)
		b.warn.warn("malformed", "dropped a message that is not ours", "subject", msg.Subject, "size", len(msg.Data), "err", err)
		return
	}
	if env.node == b.opts.NodeID {
		return // our own, already delivered locally
	}
	b.received.Add(1)
	b.hub.PublishTo(env.topic, env.m) // checked above, so it is accepted
}

// onPresence records another node's presence.
func (b *Broker) onPresence(msg *nats.Msg) {
	p, err := decodePresence(msg.Data)
	if err != nil {
		b.malformed.Add(1)
		b.warn.warn("malformed", "dropped a presence message that is not ours", "subject", msg.Subject, "size", len(msg.Data), "err", err)
		return
	}
	if p.Node == b.opts.NodeID {
		return
	}
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	if p.Kind == kindBye {
		b.mu.Lock()
		n := b.remote[p.Node]
		delete(b.remote, p.Node)
		b.mu.Unlock()
		if n != nil {
			b.log.Info("another node said goodbye", "peer", p.Node)
			b.gone(n)
		}
		return
	}
	b.mu.Lock()
	n := b.remote[p.Node]
	if n == nil && p.Kind == kindChange {
		// A node first heard of by a change (it had expired, or its hello
		// came before we subscribed): wait for its whole presence, its next
		// heartbeat, so that OnNodeAppeared lists every member it has.
		b.mu.Unlock()
		return
	}
	appeared := n == nil
	if n == nil || p.Kind == kindHello || p.Kind == kindBeat {
		if n == nil {
			n = &node{}
			b.log.Info("another node appeared", "peer", p.Node)
		}
		n.topics = p.Topics // a full state replaces what we knew
		b.remote[p.Node] = n
	} else {
		for t, ms := range p.Topics {
			if len(ms) == 0 {
				delete(n.topics, t)
			} else {
				n.topics[t] = ms
			}
		}
	}
	if n.topics == nil {
		n.topics = map[string][]string{}
	}
	n.seen = time.Now()
	b.mu.Unlock()
	if appeared && b.opts.OnNodeAppeared != nil {
		b.report(p.Node, n, b.opts.OnNodeAppeared)
	}
	if p.Kind == kindHello {
		// Answer with this node's whole presence, through the outbox so that
		// it stays in order with what was published before.
		b.enqueue(item{full: true})
	}
}

// expire forgets the nodes not heard from within PresenceExpiry.
func (b *Broker) expire() {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	now := time.Now()
	var gone []*node
	b.mu.Lock()
	for id, n := range b.remote {
		if now.Sub(n.seen) > b.opts.PresenceExpiry {
			delete(b.remote, id)
			gone = append(gone, n)
			b.log.Warn("another node's presence expired", "peer", id, "silent", now.Sub(n.seen).Round(time.Millisecond))
		}
	}
	b.mu.Unlock()
	for _, n := range gone {
		b.gone(n)
	}
}

// gone reports the members of a departed node that no other node has.
func (b *Broker) gone(n *node) {
	if b.opts.OnNodeGone != nil {
		b.report("", n, b.opts.OnNodeGone)
	}
}

// report calls fn for each topic of n with n's members that neither this
// node nor any other known node but id has (n itself is no longer, or not
// yet, counted when id is "").
func (b *Broker) report(id string, n *node, fn func(topic string, members []string)) {
	b.mu.Lock()
	topics := maps.Clone(n.topics)
	b.mu.Unlock()
	for _, t := range slices.Sorted(maps.Keys(topics)) {
		others := b.membersExcept(t, id)
		var only []string
		for _, m := range topics[t] {
			if _, ok := slices.BinarySearch(others, m); !ok {
				only = append(only, m)
			}
		}
		if len(only) > 0 {
			fn(t, only)
		}
	}
}

// warner logs a kind of warning at most once a second, with the number of
// occurrences since the last record.
type warner struct {
	log  *slog.Logger
	mu   sync.Mutex
	last map[string]time.Time
	n    map[string]int
}

func (w *warner) warn(kind, msg string, args ...any) {
	w.mu.Lock()
	if w.last == nil {
		w.last, w.n = map[string]time.Time{}, map[string]int{}
	}
	w.n[kind]++
	now := time.Now()
	if now.Sub(w.last[kind]) < time.Second {
		w.mu.Unlock()
		return
	}
	count := w.n[kind]
	w.last[kind], w.n[kind] = now, 0
	w.mu.Unlock()
	w.log.Warn(msg, append(args, "count", count)...)
}
