// Package broadcast fans messages out to many WebSocket connections.
//
// A [Hub] keeps one bounded queue per subscriber. [Hub.Publish] only puts a
// message on each queue; it never touches a socket, so one slow peer cannot
// hold up the publisher or the other subscribers. Each subscriber's messages
// are written by [Subscriber.Serve], which runs in the caller's goroutine —
// typically a task of the nursery that owns the connection — until the
// connection closes, the caller's context ends, or the subscriber is
// unsubscribed or evicted. The hub itself starts no goroutines.
//
// When a subscriber's queue is full the hub's [Policy] decides: [DropOldest]
// discards the oldest queued message to make room (the subscriber sees a gap
// but always gets the newest messages), and [Disconnect] evicts the
// subscriber and closes its connection with 1008 (policy violation).
//
// A typical handler reads from the connection in one task and writes the
// hub's messages in another:
//
//	c, err := r.Accept(ctx, nil)
//	if err != nil {
//		return err
//	}
//	return nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
//		n.Go(func(ctx context.Context) error { return hub.Serve(ctx, c) })
//		for {
//			m, err := c.Receive(ctx)
//			if err != nil {
//				return err
//			}
//			if err := hub.Publish(m); err != nil {
//				return err
//			}
//		}
//	})
//
// # Topics, brokers and presence
//
// Subscribers join topics (a chat room is a topic): [Hub.SubscribeTo] and
// [Hub.PublishTo]; Subscribe and Publish use the default topic, "". The
// application publishes through a [Broker], which also records who is
// present in each topic ([Broker.Join], [Broker.Members]). The Hub is the
// in-process broker, and the default: with it, a topic and its presence
// span one process. To run several processes (nodes) behind a load
// balancer, use the NATS broker in the nested module
// github.com/wsnursery/wsnursery/recipes/broadcast/natsbroker: it delivers
// each message to its own node's hub at once and to the other nodes' hubs
// over NATS, so every guarantee above holds for messages from other nodes
// too, and its presence covers every node. Its package documentation
// states the cross-node delivery contract. It lives in its own module so
// that importing this package (or wsconn) never downloads NATS.
//
// Serve only writes. Someone must keep calling Receive on the connection (or
// the reader goroutine of wsconn stops at a full queue and never sees the
// peer's Close frame), which is why the handler above reads even when the
// peer is not expected to send anything.
package broadcast
