package main

import (
	"context"
	"net"

	"github.com/nats-io/nats.go"
)

// Serve runs the chat on ln, with the test-only report endpoint when
// onReport is not nil.
func Serve(ctx context.Context, ln net.Listener, onReport func(Report)) error {
	return serve(ctx, ln, &options{onReport: onReport})
}

// ServeNATS is Serve for a node of a cluster on nc.
func ServeNATS(ctx context.Context, ln net.Listener, nc *nats.Conn, onReport func(Report)) error {
	return serve(ctx, ln, &options{nats: nc, natsPrefix: "wsnursery-chat-test", onReport: onReport})
}
