package natsbroker

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultReconnectBufSize is the reconnect buffer Dial gives nats.go: how
// many bytes of messages published while disconnected are kept, to be sent
// on reconnecting.
const DefaultReconnectBufSize = 1 << 20

// Dial connects to NATS with the options the delivery contract assumes,
// followed by opts (which may override them):
//
//   - servers is a comma-separated list of URLs, as nats.Connect takes it
//     (user and password, token and the tls:// scheme in the URLs work);
//     nats.go also learns the other servers of a cluster from the one it
//     is connected to;
//   - the first connection may fail: Dial returns at once with a
//     connection that keeps trying (nats.RetryOnFailedConnect), so a node
//     serves its local users while NATS is unreachable;
//   - it reconnects forever, every 500 ms per server plus up to 100 ms of
//     jitter, and pings every 5 s, counting the server dead after two
//     unanswered pings (a silent server is noticed within about 15 s; a
//     killed one at once, by its closed connection);
//   - while disconnected, up to DefaultReconnectBufSize bytes of
//     published messages are kept and sent after reconnecting; beyond
//     that nats.go refuses them and the broker drops them.
//
// Pass nats.UserCredentials(file) for a credentials file, nats.Name to name
// the connection, and handlers (nats.ConnectHandler, ReconnectHandler,
// DisconnectErrHandler) to log the connection's state.
func Dial(servers string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(DefaultReconnectBufSize),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.Timeout(2 * time.Second),
	}
	nc, err := nats.Connect(servers, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("failed to connect to NATS: %w", err)
	}
	return nc, nil
}
