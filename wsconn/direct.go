package wsconn

import (
	"context"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// The direct read: a goroutine waiting in Receive (or Reader) reads the
// next message itself, so that the network's wake-up of that goroutine is
// the only one on the way to the caller. Through the queue, the reader
// goroutine is woken and then wakes the receiver: a second goroutine, and
// often a second thread on another CPU (bench/PROFILE.md, P9).
//
// One goroutine at a time holds the reader role: the reader goroutine
// (readLoop) or one receiver. A receiver reads only what cannot block past
// its context: a message gorilla holds whole already, or a single-frame
// data message of at most directMax bytes whose remaining bytes it has
// taken from the socket into the guard's pending buffer (which gorilla
// reads first), waiting for them under ctx. For anything else — a control
// frame, a fragmented or compressed message, a longer one, an error, the
// end of the stream — it hands the role back to the reader goroutine and
// waits on the queue as before, so pings, pongs and Close frames are
// handled by the reader goroutine as they arrive. After a message the role
// stays with the receivers; when none has used it for a sweep of directIdle
// (or once closing starts) the reader goroutine takes it back, so a ping
// waits at most 2 × directIdle while nobody receives.
//
// Only plain TCP and Unix sockets without TLS, proxy or compression qualify
// (newDirect): there the guard sees every byte gorilla reads, and the
// socket's readiness says whether more will come.

// directIdle is how often the sweeper looks for connections whose role has
// stayed with the receivers, unused, since it last looked: it hands them
// back to their reader goroutines, so a ping waits at most twice this while
// nobody receives. One sweeper serves every connection (a timer per
// connection, reset per message, would wake the network poller each time).
const directIdle = time.Millisecond

// sweeper is the process's list of connections whose role is with their
// receivers, and whether its goroutine runs (only while the list is not
// empty).
var sweeper struct {
	mu      sync.Mutex
	list    []*direct
	running bool
}

// idleLocked notes that the role is with the receivers and unused; d.mu is
// held.
func (d *direct) idleLocked() {
	d.gen++
	if d.listed {
		return
	}
	d.listed, d.swept = true, d.gen-1
	sweeper.mu.Lock()
	sweeper.list = append(sweeper.list, d)
	if !sweeper.running {
		sweeper.running = true
		go sweep()
	}
	sweeper.mu.Unlock()
}

// sweep runs while some connection's role is with its receivers: every
// directIdle it hands back the roles that were not used since the last
// look, and drops from the list the connections where a receiver is busy
// (its release lists them again) or the reader has the role.
func sweep() {
	t := time.NewTicker(directIdle)
	defer t.Stop()
	var keep []*direct
	for range t.C {
		sweeper.mu.Lock()
		list := sweeper.list
		sweeper.list = nil
		if len(list) == 0 {
			sweeper.running = false
			sweeper.mu.Unlock()
			return
		}
		sweeper.mu.Unlock()
		keep = keep[:0]
		for _, d := range list {
			d.mu.Lock()
			switch {
			case d.owner != roleRecv || d.busy:
				d.listed = false
			case d.gen == d.swept:
				d.owner = roleReader
				d.listed = false
				select {
				case d.back <- struct{}{}:
				default:
				}
			default:
				d.swept = d.gen
				keep = append(keep, d)
			}
			d.mu.Unlock()
		}
		clear(list)
		sweeper.mu.Lock()
		sweeper.list = append(sweeper.list, keep...)
		sweeper.mu.Unlock()
	}
}

// directMax bounds the payload of a message read directly, and so the
// buffer a direct read may fill while it waits for the rest.
const directMax = 16 << 10

const (
	roleReader = iota // the reader goroutine
	roleRecv          // the receivers
)

type direct struct {
	c  *Conn
	rc syscall.RawConn

	mu      sync.Mutex
	owner   int
	busy    bool // a Receive is using the role
	waiters int  // Receive calls waiting on the queue
	wanted  bool // a Receive found the queue empty: hand the role over
	grant   chan struct{}
	back    chan struct{}
	stop    bool   // failed in a direct read: the reader goroutine must end
	gen     uint64 // counts releases, for the sweeper
	swept   uint64 // gen when the sweeper last looked
	listed  bool   // on the sweeper's list

	// Owned by whoever holds the role.
	read uint64 // data messages read by gorilla so far

	// Used only by the busy Receive.
	waiting  bool
	kicked   bool
	waitDone <-chan struct{}
	ctxDone  <-chan struct{}
	ctxStop  func() bool
	peekFn   func(uintptr) bool
	verdict  int
	max      uint64 // the largest payload read directly
}

// newDirect returns the direct-read state of c, or nil where a peek at the
// socket cannot tell what gorilla will read: TLS, a proxy, compression, a
// net.Conn that is not a plain TCP or Unix socket.
func newDirect(c *Conn) *direct {
	g := c.guard
	if !directSupported || g == nil || c.netConn != net.Conn(g) || g.state == guardOff || c.cfg.compress.mode != CompressionDisabled {
		return nil
	}
	var sc syscall.Conn
	switch conn := g.Conn.(type) {
	case *net.TCPConn:
		sc = conn
	case *net.UnixConn:
		sc = conn
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	d := &direct{c: c, rc: rc, grant: make(chan struct{}, 1), back: make(chan struct{}, 1)}
	d.max = directMax
	d.peekFn = d.peek
	return d
}

// take is called by the reader goroutine before each message: it hands the
// role to the receivers when one asked, and waits until it has it back
// (from a receiver, from the sweeper, or because closing started). It
// reports false when the reader must stop.
func (d *direct) take() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.stop {
			return false
		}
		if d.owner == roleReader {
			if !d.wanted || d.c.isClosing() {
				return true
			}
			d.wanted = false
			d.owner = roleRecv
			d.signalWaiter()
			d.idleLocked()
		}
		closing := d.c.closing
		if d.c.isClosing() {
			closing = nil // the busy receiver hands the role back
		}
		d.mu.Unlock()
		select {
		case <-d.back:
		case <-closing:
		}
		d.mu.Lock()
		if d.owner == roleRecv && !d.busy {
			d.owner = roleReader
		}
	}
}

func (d *direct) signalWaiter() {
	if d.waiters > 0 {
		select {
		case d.grant <- struct{}{}:
		default:
		}
	}
}

// acquire makes the calling Receive the busy role holder if the receivers
// hold the role and nobody uses it; otherwise it registers the caller as a
// waiter and asks the reader goroutine for the role.
func (d *direct) acquire() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.owner == roleRecv && !d.busy && !d.stop && !d.c.isClosing() {
		d.busy = true
		return true
	}
	d.wanted = true
	d.waiters++
	return false
}

func (d *direct) doneWaiting() {
	d.mu.Lock()
	d.waiters--
	d.mu.Unlock()
}

// release ends a busy Receive's use of the role; toReader hands it back to
// the reader goroutine.
func (d *direct) release(toReader bool) {
	d.mu.Lock()
	d.busy = false
	if toReader {
		d.owner = roleReader
		select {
		case d.back <- struct{}{}:
		default:
		}
	} else {
		d.signalWaiter()
		d.idleLocked()
	}
	d.mu.Unlock()
}

// Peek verdicts.
const (
	peekWait     = iota // nothing or not enough yet
	peekComplete        // a whole message the direct read may take
	peekHandOff         // something for the reader goroutine
)

// receive is the direct read of next, called holding the role (busy). ok
// is false when the caller must wait on the queue instead.
func (d *direct) receive(ctx context.Context) (m Message, err error, ok bool) {
	c := d.c
	g := c.guard
	if g.complete <= d.read {
		// gorilla has no whole message: wait until the bytes it holds
		// and those taken from the socket make one.
		v := d.check(g.pendingBytes())
		if v == peekWait {
			var werr error
			v, werr = d.wait(ctx)
			if werr != nil {
				d.release(false)
				return Message{}, werr, true
			}
		}
		if v != peekComplete {
			d.release(true)
			return Message{}, nil, false
		}
	}
	typ, r, rerr := c.ws.NextReader()
	if rerr != nil {
		// Sticky in gorilla: the reader goroutine sees it again and
		// handles it.
		d.release(true)
		return Message{}, nil, false
	}
	in := msgIn{r: r, limit: c.cfg.maxMessageSize, text: typ == websocket.TextMessage}
	bp := readBufs.Get().(*[]byte)
	buf, _, rerr := in.fill((*bp)[:0], -1)
	var data []byte
	if rerr == nil {
		data = make([]byte, len(buf))
		copy(data, buf)
	}
	if cap(buf) <= maxPooledRead {
		*bp = buf[:0]
		readBufs.Put(bp)
	}
	if rerr != nil {
		// The reader goroutine stops once it has the role back, as it
		// does after failing a message itself.
		c.readError(rerr)
		d.mu.Lock()
		d.stop = true
		d.mu.Unlock()
		d.release(true)
		return Message{}, nil, false
	}
	d.read++
	c.traceData("websocket message received", MessageType(typ), data)
	d.release(false)
	return Message{Type: MessageType(typ), Data: data}, nil, true
}

// check says whether the next message can be read without blocking once
// gorilla has the pending bytes p: the guard's parser stands where
// gorilla's buffered bytes end, and p follows.
func (d *direct) check(p []byte) int {
	g := d.c.guard
	if g.state == guardOff || g.ctrlAfter || g.inMessage {
		// gorilla holds a control frame or part of a fragmented message.
		return peekHandOff
	}
	// Text is checked as it arrives, so that bad UTF-8 fails the
	// connection before the rest of the message comes (Autobahn 6.4): a
	// direct read waits only for the rest of a binary message.
	var need uint64
	var text bool
	switch g.state {
	case guardPayload:
		if !g.dataFin || g.isClose || g.hdr[0]&0x0f != 2 {
			return peekHandOff
		}
		need = g.remaining
	case guardHeader:
		// The frame's header: its start in gorilla's buffer, the rest in p.
		var h [14]byte
		k := copy(h[:], g.hdr[:g.hdrLen])
		k += copy(h[k:], p)
		op, fin, rsv, masked, hdr, length, ok := parseHeader(h[:k])
		if !ok {
			return peekWait
		}
		limit := d.c.cfg.maxMessageSize
		if !fin || rsv != 0 || (op != 1 && op != 2) || g.inMessage || masked != !d.c.client ||
			length > d.max || (limit >= 0 && length > uint64(limit)) {
			return peekHandOff
		}
		need = uint64(hdr-g.hdrLen) + length
		text = op == 1
	default:
		return peekHandOff
	}
	if uint64(len(p)) < need {
		if text {
			return peekHandOff
		}
		if need > uint64(cap(p)) && g.pend != nil {
			// Room for the whole message, so that the wait can end.
			grown := make([]byte, len(p), need)
			copy(grown, p)
			*g.pend, g.poff = grown, 0
		}
		return peekWait
	}
	return peekComplete
}

// pendingBytes returns the bytes taken from the socket that gorilla has
// not read.
func (g *frameGuard) pendingBytes() []byte {
	if g.pend == nil {
		return nil
	}
	return (*g.pend)[g.poff:]
}

// parseHeader parses the frame header at the start of b; ok is false when
// b does not hold all of it.
func parseHeader(b []byte) (op byte, fin bool, rsv byte, masked bool, hdr int, length uint64, ok bool) {
	if len(b) < 2 {
		return
	}
	op, fin, rsv = b[0]&0x0f, b[0]&0x80 != 0, b[0]&0x70
	masked = b[1]&0x80 != 0
	hdr = 2
	length = uint64(b[1] & 0x7f)
	switch length {
	case 126:
		hdr = 4
	case 127:
		hdr = 10
	}
	if masked {
		hdr += 4
	}
	if len(b) < hdr {
		return op, fin, rsv, masked, hdr, 0, false
	}
	switch length {
	case 126:
		length = uint64(b[2])<<8 | uint64(b[3])
	case 127:
		length = 0
		for _, c := range b[2:10] {
			length = length<<8 | uint64(c)
		}
	}
	return op, fin, rsv, masked, hdr, length, true
}

// wait waits, bounded by ctx, until the socket holds a whole message or
// something the reader goroutine must handle.
func (d *direct) wait(ctx context.Context) (int, error) {
	done := ctx.Done()
	if done != nil && done != d.ctxDone {
		if d.ctxStop != nil {
			d.ctxStop()
		}
		d.ctxDone = done
		d.ctxStop = context.AfterFunc(ctx, func() { d.kick(done) })
	}
	d.mu.Lock()
	if ctx.Err() != nil {
		d.mu.Unlock()
		return 0, ctx.Err()
	}
	select {
	case <-d.c.dropQueue: // see dropped
		d.mu.Unlock()
		return peekHandOff, nil
	default:
	}
	d.waiting, d.waitDone, d.kicked = true, done, false
	d.mu.Unlock()
	d.verdict = peekWait
	err := d.rc.Read(d.peekFn)
	d.mu.Lock()
	d.waiting = false
	kicked := d.kicked
	d.mu.Unlock()
	if kicked {
		d.c.guard.Conn.SetReadDeadline(time.Time{})
	}
	if err != nil {
		if kicked && ctx.Err() != nil && d.verdict == peekWait {
			return 0, ctx.Err()
		}
		if d.verdict == peekWait {
			d.verdict = peekHandOff
		}
	}
	return d.verdict, nil
}

// dropped interrupts a direct wait when a local Close discards the queue,
// so that the waiting receiver fails at once as it would on the queue. It
// is called with c.mu held, after dropQueue is closed; d may be nil.
func (d *direct) dropped() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.waiting && !d.kicked {
		d.kicked = true
		d.c.guard.Conn.SetReadDeadline(pastTime)
	}
}

// kick interrupts the wait of a Receive whose ctx ended.
func (d *direct) kick(done <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.waiting && d.waitDone == done && !d.kicked {
		d.kicked = true
		d.c.guard.Conn.SetReadDeadline(pastTime)
	}
}

// releaseCtx drops the AfterFunc registration; the reader goroutine calls
// it when it stops (it holds the role then).
func (d *direct) releaseCtx() {
	if d.ctxStop != nil {
		d.ctxStop()
		d.ctxStop = nil
	}
}
