package wsbench

import (
	"context"
	"time"

	"github.com/wsnursery/wsnursery/heartbeat"
)

// HeartbeatImpl says what runs the heartbeat of each library.
const HeartbeatImpl = "wsconn: heartbeat.Run; others: the same loop (ping with timeout, pause interval) over the library's ping"

// heartbeat runs the heartbeat of one connection until ctx ends.
func runLibHeartbeat(ctx context.Context, lib Lib, c Client, interval time.Duration, rec *latencies) {
	if wc, ok := c.(*wsconnClient); ok {
		err := heartbeat.Run(ctx, timedPinger{wc, rec}, &heartbeat.Options{Timeout: HeartbeatTimeout, Interval: interval})
		if ctx.Err() == nil {
			rec.record(0, err)
		}
		return
	}
	pingLoop(ctx, c, interval, rec)
}

// timedPinger records every ping's round trip.
type timedPinger struct {
	c   *wsconnClient
	rec *latencies
}

func (p timedPinger) Ping(ctx context.Context, payload []byte) error {
	start := time.Now()
	err := p.c.c.Ping(ctx, payload)
	if err == nil {
		p.rec.record(time.Since(start), nil)
	}
	return err
}
