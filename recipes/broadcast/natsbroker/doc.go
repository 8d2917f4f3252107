// Package natsbroker links the broadcast hubs of several processes (nodes)
// over NATS, so that a WebSocket service built on recipes/broadcast can run
// as many nodes behind a load balancer.
//
// Each node has a [broadcast.Hub] for its own connections and a [Broker] on
// a NATS connection. The application subscribes connections on the hub and
// publishes and joins through the broker (a [broadcast.Broker]):
//
//	nc, err := natsbroker.Dial("nats://n1:4222,nats://n2:4222", nats.UserCredentials(file))
//	...
//	hub := broadcast.NewHub(nil)
//	b, err := natsbroker.New(hub, nc, &natsbroker.Options{Prefix: "chat"})
//	...
//	sub := hub.SubscribeTo("room", c)   // in each connection's handler
//	leave := b.Join("room", name)
//	b.PublishTo("room", m)
//
// This package is a module of its own, so that a program that imports
// wsconn or recipes/broadcast alone never downloads NATS.
//
// # Delivery contract
//
// While NATS is up, every message published through a broker reaches every
// subscriber of its topic on every node, in the order its publisher
// published it, exactly once. The publishing node delivers to its own hub
// directly and ignores its own messages when NATS hands them back (each
// envelope names its node), so there is no echo. Order holds per publishing
// node, whichever of its goroutines publish: the other nodes see a node's
// messages in the order its own subscribers saw them. Messages from
// different nodes interleave in no fixed order.
// Messages from other nodes enter the hub like local ones, so the hub's
// guarantees hold for them: nothing waits on a socket, each subscriber has
// its bounded queue, and the hub's Policy (DropOldest, or Disconnect with
// 1008) handles a slow subscriber without slowing its node or the others.
//
// PublishTo never waits for NATS: it delivers locally and puts the message
// on the broker's outbox (Options.OutboxSize), from which one goroutine
// hands it to nats.go. A full outbox drops the cross-node copy, counted in
// Stats.Dropped and logged. On the receiving side, a node whose broker
// falls behind what NATS delivers (nats.go's pending limits, a slow
// consumer) loses the excess: nats.go drops it, and the broker counts it
// in Stats.Dropped and logs a warning with nats.ErrSlowConsumer.
//
// When NATS is unreachable, every node keeps serving its own subscribers as
// before, and nats.go reconnects by itself, trying every server it knows
// (the URLs given to Dial and the ones a cluster advertises); cross-node
// delivery then resumes with the next message. What is lost during an
// outage: core NATS keeps nothing for a subscriber that is not connected,
// so a node misses every message other nodes publish while it is away.
// What a node publishes while disconnected is kept by nats.go, up to
// DefaultReconnectBufSize bytes (Dial's setting), and sent when it
// reconnects: in a cluster failover, where the other nodes stayed
// connected, they receive it late but in order; after a total outage they
// receive it only if they reconnected first, so count on losing it.
// Beyond the buffer, messages are dropped and counted. Messages in flight
// inside a server that dies are lost too. Nothing is duplicated.
//
// A message on the broker's subjects that is not a well-formed envelope
// from a broker (a foreign client, a bug, another version) is dropped with
// a log record (rate-limited) and counted in Stats.Malformed: it is never
// delivered to clients, and never stops the broker.
//
// Subjects start with Options.Prefix (Prefix+".msg" for messages,
// Prefix+".presence" for presence), so several applications can share one
// NATS. A broker subscribes to Prefix+".*" once: every node receives every
// topic of its prefix (its hub keeps the ones with local subscribers), and
// what one node publishes, messages and presence alike, is handled by the
// others in that node's order — a member's Join is visible on the other
// nodes before any message its node published after the Join.
//
// # Presence
//
// Join records a member on this node; Members returns the members of every
// node. Each node publishes its presence when it changes and every
// Options.HeartbeatInterval (2 s), and a node that starts or reconnects
// asks the others for theirs. A node's presence ends with its goodbye
// (Close), or, for a node that died without one (SIGKILL, a lost machine),
// when nothing has come from it for Options.PresenceExpiry (at least twice
// the interval): with the defaults it leaves the others' Members within
// 12 s. Options.OnNodeGone tells each node which members went with it, so
// that it can announce their leaving to its own subscribers, and
// Options.OnNodeAppeared which members came with a node it hears from for
// the first time or again (on its first whole presence: a hello or a
// heartbeat). The two callbacks are serialized, in the order of the
// changes they report.
// While a node is cut off from NATS for longer than the expiry, the other
// nodes' presence expires in its view (and its in theirs), and comes back
// within a heartbeat of reconnecting.
//
// Presence is eventually consistent: two nodes that admit the same name at
// the same moment both show it, and Members lists it once until both have
// left.
package natsbroker
