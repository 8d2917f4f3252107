// Package wsconn provides WebSocket connections whose every operation takes
// a context.Context, in the style of Python's trio-websocket, built on
// gorilla/websocket's frame layer.
//
// # Concurrency
//
// Every method of Conn is safe for concurrent use by any number of
// goroutines. Each connection runs one background reader goroutine for its
// whole life. It reads whole messages into a bounded queue (MessageQueueSize,
// default 1, as in trio-websocket) and, while it reads, answers pings and
// Close frames. Receive only waits on that queue, so cancelling a Receive
// never loses a message or harms the connection, and concurrent Receive
// callers each get distinct messages. When the queue is full the reader
// stops reading, which is the back-pressure TCP passes on to the peer; a
// peer's pings are answered again once the application receives.
//
// Data messages are written one at a time behind a lock that a context can
// give up waiting for (nothing is then sent). A context that ends while a
// message is on the wire aborts the connection, because a frame cannot be
// resumed halfway. Pings, pongs and Close frames go out between the frames
// of a data message.
//
// Ping blocks until the matching pong arrives; a pong also answers every
// ping sent before it, as RFC 6455 allows a peer to answer only the latest.
//
// # Closing
//
// Close runs the closing handshake: it sends Close, waits (bounded by its
// context and DisconnectTimeout) for the peer's Close, then closes TCP.
// CloseReason is set the moment closing starts, by either side, and ends as
// the code the peer echoed. Once closing has started every Send, Ping and
// Pong fails with a *ConnectionClosedError. After the peer closes or the
// connection is lost, Receive still returns the messages already queued,
// then a *ConnectionClosedError; after a local Close the queue is discarded.
// Done is closed when everything is over: TCP closed, reader stopped.
//
// Bad input fails the connection with the matching code: invalid UTF-8 in a
// text message 1007, a message over MaxMessageSize 1009, framing errors 1002.
//
// # Defaults
//
// As in trio-websocket: MessageQueueSize 1 (the benchmarks in bench/ found
// no consistent gain from a longer queue), MaxMessageSize 1 MiB, and 60 s
// for ConnectTimeout and DisconnectTimeout. Clients write through pooled
// 64 KiB buffers, so a message up to that size is one frame; servers reuse
// the buffers of the hijacked HTTP connection.
//
// Open and the Server's Handler scope a connection: their function's
// context is cancelled, with the *ConnectionClosedError as cause, as soon as
// the connection closes, and the connection is closed when the function
// returns.
package wsconn
