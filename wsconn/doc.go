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
// On plain TCP and unix sockets (no TLS, proxy or compression), a Receive
// that is already waiting may read the next message itself instead of
// being handed it by the reader goroutine, which saves a thread wake-up
// per message on multi-core machines (bench/PROFILE.md, P9–P10). It does
// so only where the read cannot block past its context: a message already
// buffered, or a single-frame binary message of at most 16 KiB. Everything
// else (control frames, fragmented, compressed or longer messages, errors)
// stays with the reader goroutine, which takes the role back within about
// a millisecond once nobody receives, so pings are still answered while
// nobody receives, only up to ~2 ms later. None of this changes what
// Receive returns, or in which order.
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
// # Streams
//
// Reader and Writer move one message as a stream, for messages too large
// to hold (MaxMessageSize still bounds a Reader; negative means no limit).
// The first Reader switches the connection to streaming (a connection only
// ever used with Receive reads every message ahead whole): a message of up
// to 64 KiB is still read ahead whole, but a longer one only 64 KiB; it then
// waits at the head of the queue, counting as a full queue, until Reader
// streams it or Receive has it read whole.
// While it streams, the reader goroutine reads, and so answers pings, only
// as fast as the application reads the stream: one that stops reading
// mid-message stalls the connection's pongs just as a full queue does.
// Cancelling a Reader's context discards the rest of its message and the
// connection stays open. Text is checked as it arrives: invalid UTF-8 fails
// the connection with 1007 as soon as it is read, not at the message's end.
//
// A Writer holds the turn to write data messages until it is closed; pings,
// pongs and Close frames still go out between its frames. Its context
// ending while it waits for the turn sends nothing; ending once it has
// returned aborts the connection, as for Send. NetConn wraps a connection
// as a net.Conn (one message per Write, messages read as one byte stream,
// deadlines per call), for tunnels and net/http; CloseRead serves a
// connection that only writes.
//
// # Closing
//
// Close runs the closing handshake: it sends Close, waits (bounded by its
// context and DisconnectTimeout) for the peer's Close, then closes TCP.
// CloseReason is set the moment closing starts, by either side, and ends as
// the code the peer echoed. Once closing has started every Send, Ping and
// Pong fails with a *ConnectionClosedError. After the peer closes or the
// connection is lost, Receive still returns the messages already queued,
// then a *ConnectionClosedError; after a local Close the queue is discarded
// (CloseReceiving keeps it, and what arrives before the peer's Close).
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
// # Compression
//
// With Compression set to CompressionNoContextTakeover (DialOptions,
// AcceptOptions, or ServerOptions as the server's default) a connection
// negotiates permessage-deflate (RFC 7692) with server_no_context_takeover
// and client_no_context_takeover; Conn.Compression reports the outcome. A
// client offers exactly that and fails the handshake (ErrHandshake) when
// the response names anything else, omits either parameter or adds one it
// did not offer (only server_max_window_bits, which limits the server's
// own window, is allowed). A server accepts the first offer it can honour
// and declines the rest: offers with unknown or malformed parameters, and
// offers with server_max_window_bits, since compress/flate always deflates
// with a 32 KiB window and gorilla's fixed response cannot echo the
// parameter; client_max_window_bits is accepted (any window inflates).
//
// Data messages shorter than CompressionThreshold (default 512 bytes) go
// out uncompressed, with RSV1 clear; the others are deflated at
// CompressionLevel (default flate.BestSpeed). Control frames are never
// compressed.
//
// MaxMessageSize counts inflated bytes, checked as they are produced: a
// small frame that would inflate to gigabytes fails with 1009 while the
// reader holds at most MaxMessageSize+1 bytes of message (plus the ~40 KiB
// of a pooled flate reader); the buffers grown on the way to that sum to
// under twice the limit. A compressed message's frame lengths are held to
// what the limit can deflate to (MaxMessageSize + 1/512 + 1 KiB), so that
// incompressible data, which deflate expands a little, is not refused.
// RSV1 on a control or continuation frame, or when compression was not
// negotiated, fails the connection with 1002. Deflate data that does not
// inflate fails it with 1007: the frames were well formed, their payload
// is not what the negotiated extension says it is, which is how 1007
// (invalid frame payload data) also answers bad UTF-8.
// (Through an HTTP or SOCKS5 proxy the frame guard reads nothing, and
// gorilla then lets RSV1 on a control frame pass unremarked.)
//
// Context takeover (a deflate window kept from message to message) is not
// offered: gorilla's frame path supports only no-context-takeover. It is
// also the sane default for servers with many connections: takeover keeps
// a flate window per connection and direction, at least 32 KiB to inflate
// and some hundreds of KiB of deflate state, even while the connection is
// idle. Without it both are pooled and held only while a message is
// compressed or inflated, so an idle compressed connection costs no more
// than an uncompressed one.
//
// # Scopes: one rule for the close code
//
// Open, Conn.Scope and the Server's Handler scope a connection: the
// function's context is cancelled, with the *ConnectionClosedError as its
// cause, as soon as the connection closes, so every task working on a dead
// connection stops; and when the function returns the connection is closed
// by one rule, written once (Conn.Scope) and followed by Open, the Server,
// recipes/reconnect and recipes/app. The first line that applies decides:
//
//	when fn (or the handler) ended …           Close frame sent
//	-----------------------------------------  ----------------------------------
//	the connection had already closed or was   none: the code already exchanged
//	closing (fn typically returns its          stands
//	*ConnectionClosedError, or ctx's
//	cancellation that the close caused)
//	by panicking                               1011 "internal error"; the panic
//	                                           goes on (Open, Scope) or becomes a
//	                                           logged *HandlerPanicError (Server)
//	after its parent ctx ended, or the         1001 (going away)
//	server shut down
//	returning an error                         1011 "internal error" (the error
//	                                           itself stays on this side)
//	returning nil                              1000 (normal closure)
//
// Open and Scope return fn's error itself, except that ctx's cancellation
// caused by the close is replaced by the *ConnectionClosedError. A Server
// logs a handler's error or panic unless it is the connection's own close
// or the end of the server or request.
//
// # Logging and tracing
//
// A Server logs what goes wrong through ServerOptions.Logger, or
// slog.Default() when that is nil, as net/http logs through the log
// package's default: handler errors and panics at Error; refused handshakes
// (not a WebSocket handshake, a forbidden origin, MaxConnections reached)
// at Warn, and those refused during shutdown at Info. Tracing is opt-in: a
// Logger whose Debug level is enabled, in DialOptions or ServerOptions,
// receives one Debug record per event, much as websocket-client's
// enableTrace prints: the handshake request and response headers
// ("websocket handshake sent"/"response" on a client, "received"/"accepted"
// on a server; Authorization, Proxy-Authorization, Cookie and Set-Cookie
// redacted), every message sent and received (type, len), pings and pongs
// both ways (len), Close frames both ways (code, reason) and the end of
// the connection. Payload bytes are added only with TracePayloads (text as
// is, binary in hex, at most 1 KiB per record).
//
// # Protecting a server
//
// A Server run with Serve or ListenAndServe drops clients that do not send
// their handshake within ConnectTimeout (it is the http.Server's
// ReadHeaderTimeout and IdleTimeout), refuses request headers over
// MaxHeaderBytes (default 64 KiB) with 431, and, with MaxConnections,
// answers handshakes beyond that many running handlers with 503 Service
// Unavailable and Retry-After while the open connections go on. Mounted
// with ServeHTTP in an http.Server of your own, the first two are that
// server's settings: set its ReadHeaderTimeout and MaxHeaderBytes.
package wsconn
