package broadcast

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wsnursery/wsnursery/wsconn"
)

// Defaults for Options.
const (
	DefaultQueueSize    = 16
	DefaultCloseTimeout = 5 * time.Second
)

// Policy says what happens when a message is published to a subscriber whose
// queue is full.
type Policy int

const (
	// DropOldest discards the oldest message in the subscriber's queue to
	// make room for the new one. The subscriber stays connected and misses
	// messages; it always receives the most recent ones.
	DropOldest Policy = iota
	// Disconnect evicts the subscriber: it is removed from the hub at once,
	// its queued messages are discarded, and its Serve closes the connection
	// with 1008 (policy violation) and returns ErrSlowSubscriber.
	Disconnect
)

// String returns "drop-oldest", "disconnect" or "Policy(n)".
func (p Policy) String() string {
	switch p {
	case DropOldest:
		return "drop-oldest"
	case Disconnect:
		return "disconnect"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ErrSlowSubscriber is returned by Serve for a subscriber evicted under the
// Disconnect policy.
var ErrSlowSubscriber = errors.New("broadcast: subscriber evicted: send queue overflowed")

// errServeTwice is returned by a second call to Serve.
var errServeTwice = errors.New("broadcast: Serve called twice on one subscriber")

// Options configures a Hub. A nil *Options means defaults.
type Options struct {
	// QueueSize is how many messages may wait for each subscriber's writer,
	// not counting the one being written. Default 16.
	QueueSize int
	// Policy applies when a subscriber's queue is full. Default DropOldest.
	Policy Policy
	// CloseTimeout bounds the closing handshake with a subscriber evicted
	// under the Disconnect policy; when it runs out the connection is
	// dropped. Default 5 s.
	CloseTimeout time.Duration
}

// Stats are a hub's counters.
type Stats struct {
	Subscribers int    // currently subscribed, over all topics
	Dropped     uint64 // messages discarded by DropOldest, over the hub's life
	Evicted     uint64 // subscribers evicted by Disconnect, over the hub's life
}

// Hub fans published messages out to its subscribers, topic by topic. The
// zero Hub is not usable; create one with NewHub. All methods are safe for
// concurrent use.
//
// A Hub is also the in-process [Broker]: its PublishTo, Join and Members
// cover this process only.
type Hub struct {
	opts     Options
	presence *Presence

	mu      sync.Mutex // guards the fields below; never held during I/O
	topics  map[string]map[*Subscriber]struct{}
	nsubs   int
	dropped uint64
	evicted uint64
}

var _ Broker = (*Hub)(nil)

// NewHub returns a hub with no subscribers.
func NewHub(opts *Options) *Hub {
	h := &Hub{topics: map[string]map[*Subscriber]struct{}{}, presence: NewPresence(nil)}
	if opts != nil {
		h.opts = *opts
	}
	if h.opts.QueueSize <= 0 {
		h.opts.QueueSize = DefaultQueueSize
	}
	if h.opts.CloseTimeout <= 0 {
		h.opts.CloseTimeout = DefaultCloseTimeout
	}
	return h
}

// Stats returns the hub's current counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{Subscribers: h.nsubs, Dropped: h.dropped, Evicted: h.evicted}
}

// Publish publishes m on the default topic, "": it is PublishTo("", m).
func (h *Hub) Publish(m wsconn.Message) error { return h.PublishTo("", m) }

// PublishTo queues m for every current subscriber of topic and returns
// without waiting for any of them: it never blocks on a socket. A subscriber
// whose queue is full is handled by the hub's Policy.
//
// The hub keeps m.Data until every subscriber has written it, sharing one
// slice among them; the caller must not modify it afterwards. A message that
// could not be sent (an invalid type, or text that is not valid UTF-8) is
// rejected with an error and queued for nobody.
//
// PublishTo reaches this hub's subscribers only. A broker that links hubs
// across processes (such as natsbroker) calls it to deliver messages that
// arrive from other nodes, and applications publish through the broker.
func (h *Hub) PublishTo(topic string, m wsconn.Message) error {
	if err := CheckMessage(m); err != nil {
		return fmt.Errorf("failed to publish: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.topics[topic]
	for s := range subs {
		switch s.push(m, h.opts.Policy) {
		case pushDropped:
			h.dropped++
		case pushEvicted:
			h.evicted++
			h.removeLocked(s)
		}
	}
	return nil
}

// CheckMessage reports why m cannot be sent on a WebSocket connection: an
// invalid type, or text that is not valid UTF-8. It returns nil for a
// sendable message. PublishTo applies it; brokers apply it to what they
// receive from other nodes.
func CheckMessage(m wsconn.Message) error {
	switch m.Type {
	case wsconn.Text:
		if !utf8.Valid(m.Data) {
			return errors.New("text is not valid UTF-8")
		}
	case wsconn.Binary:
	default:
		return fmt.Errorf("invalid message type %v", m.Type)
	}
	return nil
}

// removeLocked takes s out of its topic. Called with h.mu held.
func (h *Hub) removeLocked(s *Subscriber) {
	subs := h.topics[s.topic]
	if _, ok := subs[s]; !ok {
		return
	}
	delete(subs, s)
	h.nsubs--
	if len(subs) == 0 {
		delete(h.topics, s.topic)
	}
}

// Join records member as present in topic on this hub until the returned
// leave function is called (leave is idempotent). A member joined twice is
// present until both have left. Presence is separate from subscription:
// the hub does not tie members to connections.
func (h *Hub) Join(topic, member string) (leave func()) { return h.presence.Join(topic, member) }

// Members returns who is present in topic on this hub, sorted, each once.
func (h *Hub) Members(topic string) []string { return h.presence.Members(topic) }

// Subscribe subscribes c to the default topic, "": it is SubscribeTo("", c).
func (h *Hub) Subscribe(c *wsconn.Conn) *Subscriber { return h.SubscribeTo("", c) }

// SubscribeTo adds c to the hub as a subscriber of topic and returns its
// subscriber: every message published on topic from now on is queued for
// it. The caller must then call Serve, which writes the queue to c, or
// Unsubscribe. A connection that wants several topics subscribes once per
// topic, and serves each subscriber.
//
// Subscribe and Serve are separate so that a caller can act between them
// knowing c is already subscribed — for example publish "c joined", which c
// then receives too. Hub.Serve does both at once.
func (h *Hub) SubscribeTo(topic string, c *wsconn.Conn) *Subscriber {
	s := &Subscriber{
		hub:   h,
		topic: topic,
		conn:  c,
		queue: make([]wsconn.Message, h.opts.QueueSize),
		wake:  make(chan struct{}, 1),
		unsub: make(chan struct{}),
	}
	s.evicted, s.evict = context.WithCancel(context.Background())
	h.mu.Lock()
	subs := h.topics[topic]
	if subs == nil {
		subs = map[*Subscriber]struct{}{}
		h.topics[topic] = subs
	}
	subs[s] = struct{}{}
	h.nsubs++
	h.mu.Unlock()
	return s
}

// Serve subscribes c to the default topic and writes the hub's messages to it until the
// connection closes, ctx ends, or c is evicted; see Subscriber.Serve.
func (h *Hub) Serve(ctx context.Context, c *wsconn.Conn) error {
	return h.Subscribe(c).Serve(ctx)
}

// Subscriber is one connection's subscription to a hub.
type Subscriber struct {
	hub   *Hub
	topic string
	conn  *wsconn.Conn

	mu      sync.Mutex // guards the fields below; never held during I/O
	queue   []wsconn.Message
	head, n int
	gone    bool // unsubscribed or evicted: push does nothing
	served  bool

	wake  chan struct{} // capacity 1: the queue became non-empty
	unsub chan struct{} // closed by Unsubscribe

	// evicted is cancelled when the Disconnect policy evicts s. A context
	// rather than a channel, so that Serve can hang the Close on it with
	// context.AfterFunc and an idle subscriber costs no extra goroutine.
	evicted context.Context
	evict   context.CancelFunc
}

// Conn returns the subscriber's connection.
func (s *Subscriber) Conn() *wsconn.Conn { return s.conn }

// Topic returns the topic s is subscribed to.
func (s *Subscriber) Topic() string { return s.topic }

type pushResult int

const (
	pushQueued pushResult = iota
	pushDropped
	pushEvicted
	pushIgnored
)

// push queues m. Called by Publish with the hub's lock held.
func (s *Subscriber) push(m wsconn.Message, p Policy) pushResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return pushIgnored
	}
	res := pushQueued
	if s.n == len(s.queue) {
		if p == Disconnect {
			s.discardLocked()
			s.evict()
			return pushEvicted
		}
		s.queue[s.head] = wsconn.Message{}
		s.head = (s.head + 1) % len(s.queue)
		s.n--
		res = pushDropped
	}
	s.queue[(s.head+s.n)%len(s.queue)] = m
	s.n++
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return res
}

// pop takes the oldest queued message.
func (s *Subscriber) pop() (wsconn.Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 || s.gone {
		return wsconn.Message{}, false
	}
	m := s.queue[s.head]
	s.queue[s.head] = wsconn.Message{}
	s.head = (s.head + 1) % len(s.queue)
	s.n--
	return m, true
}

// discardLocked marks s gone and releases its queued messages.
func (s *Subscriber) discardLocked() {
	s.gone = true
	clear(s.queue)
	s.head, s.n = 0, 0
}

// Unsubscribe removes s from the hub and discards its queued messages. A
// running Serve returns nil once the message it is writing, if any, is
// written; the connection stays open. Unsubscribe is idempotent and does
// nothing to an evicted subscriber.
func (s *Subscriber) Unsubscribe() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return
	}
	s.discardLocked()
	h.removeLocked(s)
	close(s.unsub)
}

// Serve writes the subscriber's queued messages to its connection, one at a
// time and in the order published, until one of these ends it:
//
//   - the connection closes, by either side or by failing: Serve returns nil,
//     since that is how a subscription normally ends (the connection's
//     CloseReason says why);
//   - ctx ends: Serve returns ctx.Err(). A message being written when ctx
//     ends aborts the connection, as wsconn.Conn.Send does;
//   - Unsubscribe is called: Serve returns nil and the connection stays open;
//   - the subscriber is evicted by the Disconnect policy: Serve closes the
//     connection with 1008, bounded by Options.CloseTimeout and ctx, and
//     returns ErrSlowSubscriber. The Close frame goes out even while a write
//     is stuck on a peer that does not read, once its socket drains; if it
//     cannot within the timeout, the connection is dropped.
//
// When Serve returns the subscriber is no longer in the hub. Serve may be
// called once; a second call returns an error at once.
func (s *Subscriber) Serve(ctx context.Context) error {
	s.mu.Lock()
	twice := s.served
	s.served = true
	s.mu.Unlock()
	if twice {
		return errServeTwice
	}
	defer s.Unsubscribe()

	// An eviction must close the connection even while this goroutine is
	// stuck in Send, so the Close runs beside it; Serve waits for it.
	closed := make(chan struct{})
	stop := context.AfterFunc(s.evicted, func() {
		defer close(closed)
		cctx, cancel := context.WithTimeout(ctx, s.hub.opts.CloseTimeout)
		defer cancel()
		s.conn.Close(cctx, wsconn.StatusPolicyViolation, "slow subscriber: send queue overflowed")
	})
	defer func() {
		if !stop() {
			<-closed
		}
	}()
	evicted := s.evicted.Done()
	slow := func() error {
		<-closed // the AfterFunc has run or is running
		return ErrSlowSubscriber
	}

	for {
		select {
		case <-evicted:
			return slow()
		case <-s.unsub:
			return nil
		default:
		}
		if m, ok := s.pop(); ok {
			if err := s.conn.Send(ctx, m); err != nil {
				select {
				case <-evicted:
					return slow()
				default:
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if errors.Is(err, wsconn.ErrConnectionClosed) {
					return nil
				}
				return fmt.Errorf("failed to write broadcast message: %w", err)
			}
			continue
		}
		select {
		case <-s.wake:
		case <-evicted:
			return slow()
		case <-s.unsub:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-s.conn.Done():
			return nil
		}
	}
}
