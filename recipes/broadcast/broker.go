package broadcast

import "github.com/wsnursery/wsnursery/wsconn"

// A Broker delivers published messages to the subscribers of a topic and
// keeps track of who is present in it. An application publishes and joins
// through its Broker and subscribes connections on its Hub.
//
// A *Hub is the in-process Broker: its reach is one process. A broker that
// links the hubs of several processes (nodes) — natsbroker does it over
// NATS — delivers each message to its own node's hub with Hub.PublishTo and
// carries it to the other nodes, whose brokers do the same there; its
// Members covers every node.
//
// Implementations are safe for concurrent use, and PublishTo never blocks on
// a socket or on the network.
type Broker interface {
	// PublishTo delivers m to every subscriber of topic, with the hubs'
	// guarantees: queued, never waited for. It returns an error only for a
	// message that cannot be sent at all (see CheckMessage).
	PublishTo(topic string, m wsconn.Message) error
	// Join records member as present in topic until leave is called.
	Join(topic, member string) (leave func())
	// Members returns who is present in topic, sorted, each once.
	Members(topic string) []string
}
