package main

import (
	"context"
	"net"
)

// Serve runs the chat on ln, with the test-only report endpoint when
// onReport is not nil.
func Serve(ctx context.Context, ln net.Listener, onReport func(Report)) error {
	return serve(ctx, ln, &options{onReport: onReport})
}
