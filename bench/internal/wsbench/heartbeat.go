package wsbench

import (
	"context"
	"time"
)

// HeartbeatImpl says what runs the heartbeat of wsconn connections.
const HeartbeatImpl = "pingLoop (heartbeat package not landed yet)"

// heartbeat runs the heartbeat of one connection until ctx ends.
func heartbeat(ctx context.Context, lib Lib, c Client, interval time.Duration, rec *latencies) {
	pingLoop(ctx, c, interval, rec)
}
