// Package heartbeat checks that the peer of a WebSocket connection is still
// there, the Go version of trio-websocket's heartbeat recipe.
//
// A connection can look healthy for a long time after the peer has gone: a
// crashed host or a dead NAT mapping sends no FIN, and a reader waiting for
// the next message just waits. [Run] notices by pinging: it sends a ping at
// once, gives the peer a timeout to answer with a pong, pauses for an
// interval, and repeats. Both durations are named in [Options], and a nil
// *Options means the defaults (a ping every 20 s, each given 20 s to be
// answered). When a pong is late it returns an error matching
// [ErrTooSlow]; when the connection fails it returns that error unchanged;
// when its context is done it returns the context's error.
//
// Run is meant to run next to the connection's reader in a
// [github.com/wsnursery/wsnursery/nursery], so that whichever fails first
// stops the other:
//
//	err := nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
//		n.Go(func(ctx context.Context) error {
//			return heartbeat.Run(ctx, conn, &heartbeat.Options{Timeout: 10 * time.Second, Interval: 30 * time.Second})
//		})
//		n.Go(func(ctx context.Context) error {
//			return readMessages(ctx, conn)
//		})
//		return nil
//	})
//	if errors.Is(err, heartbeat.ErrTooSlow) {
//		// the peer stopped answering
//	}
//
// The connection only has to provide the one method of [Pinger]. [Options]
// can also add jitter to the interval and report round-trip times.
package heartbeat
