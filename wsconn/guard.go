package wsconn

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// frameGuard sits between gorilla's reader and the socket and checks the
// two things about Close frames that gorilla gets wrong: a payload of one
// byte (RFC 6455 §5.5.1 allows 0 or at least 2; gorilla reads it as "no
// status") and a reason that is not UTF-8 (gorilla answers 1002; §8.1 and
// Autobahn expect 1007). It parses frame headers as the bytes pass, skips
// payloads in bulk, and holds back the last byte of a Close frame until its
// payload has been checked, so gorilla never acts on a bad one: the next
// Read returns a *guardError instead (a *peerCloseFrame for a valid code
// that gorilla would refuse, 1014), which the reader turns into the right
// close code. It also fails a data message as soon as its frame headers
// declare more than MaxMessageSize (1009), and checks RSV1 against the
// negotiated compression.
type frameGuard struct {
	net.Conn
	err         error
	maxMessage  int64 // < 0: no limit
	interrupted atomic.Bool
	server      bool   // frames must be masked
	inMessage   bool   // a fragmented data message is open
	messageLen  uint64 // declared length of the data message so far
	deflate     bool   // permessage-deflate offered (client) or accepted (server)
	compressed  bool   // the current data message has RSV1 set
	// connErr is the first error the connection under the guard returned
	// from a read: the transport failed, whatever gorilla or inflate make
	// of it (crypto/tls reports a record cut short as a bare
	// io.ErrUnexpectedEOF, which inflate also uses for corrupt data).
	connErr error

	// For the direct read (direct.go): bytes handed to gorilla, data
	// messages whose last byte has been handed, and where the last one
	// ended. Changed only by whoever holds the reader role.
	handed    uint64
	complete  uint64
	boundary  uint64
	base      uint64 // handed before the Read being scanned
	dataFin   bool   // the frame being parsed ends a data message
	ctrlAfter bool   // a control frame ended after the last data message
	// Bytes a direct read took from the socket that gorilla has not read
	// yet: pend[poff:]. Read hands them out before reading the socket.
	pend *[]byte
	poff int

	state     int
	tail      uint32 // last four bytes, while skipping the HTTP response
	hdr       [14]byte
	hdrLen    int
	hdrNeed   int
	remaining uint64
	isClose   bool
	masked    bool
	mask      [4]byte
	close     [maxControlPayload]byte
	closeLen  int
}

const (
	guardOff  = iota // through a proxy: no parsing, writes only
	guardHTTP        // client: the upgrade response comes first
	guardHeader
	guardPayload
)

// guardError is what the guard reports for input that must fail the
// connection with code.
type guardError struct {
	code   StatusCode
	reason string
}

func (e *guardError) Error() string { return "invalid frame: " + e.reason }

func newFrameGuard(c net.Conn, state int, maxMessage int64) *frameGuard {
	return &frameGuard{Conn: c, state: state, maxMessage: maxMessage, server: state == guardHeader}
}

// peerCloseFrame carries a valid Close frame that gorilla would refuse:
// code 1014 (bad gateway) is registered with IANA but missing from
// gorilla's list. The reader answers it as the peer's close.
type peerCloseFrame struct {
	code   StatusCode
	reason string
}

func (e *peerCloseFrame) Error() string { return "close frame received" }

// The write side: Send interrupts a write whose context ends by making
// every write fail until resume. gorilla resets the socket's deadline for
// each frame, so the guard keeps it in the past while interrupted.

var errWriteInterrupted = errors.New("write interrupted")

var pastTime = time.Unix(1, 0)

func (g *frameGuard) Write(p []byte) (int, error) {
	if g.interrupted.Load() {
		return 0, errWriteInterrupted
	}
	return g.Conn.Write(p)
}

func (g *frameGuard) SetWriteDeadline(t time.Time) error {
	if g.interrupted.Load() {
		t = pastTime
	}
	return g.Conn.SetWriteDeadline(t)
}

func (g *frameGuard) interrupt() {
	g.interrupted.Store(true)
	g.Conn.SetWriteDeadline(pastTime)
}

func (g *frameGuard) resume() {
	g.interrupted.Store(false)
	g.Conn.SetWriteDeadline(time.Time{})
}

func (g *frameGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	var n int
	var err error
	if g.pend != nil {
		n = copy(p, (*g.pend)[g.poff:])
		g.poff += n
		if g.poff == len(*g.pend) {
			g.releasePend()
		}
	} else {
		n, err = g.Conn.Read(p)
		if err != nil && g.connErr == nil {
			g.connErr = err
		}
	}
	if n > 0 && g.state != guardOff {
		g.base = g.handed
		if k, bad := g.scan(p[:n]); bad != nil {
			g.err = bad
			g.handed += uint64(k)
			if k == 0 {
				return 0, bad
			}
			return k, nil
		}
	}
	g.handed += uint64(n)
	return n, err
}

// scan advances the parser over b. On a bad Close frame it returns how many
// bytes of b may still be handed on (all but the frame's last byte).
func (g *frameGuard) scan(b []byte) (int, error) {
	for i := 0; i < len(b); {
		switch g.state {
		case guardOff:
			return len(b), nil
		case guardHTTP:
			g.tail = g.tail<<8 | uint32(b[i])
			i++
			if g.tail == 0x0d0a0d0a { // end of the response headers
				g.state, g.hdrLen = guardHeader, 0
				g.boundary = g.base + uint64(i)
			}
		case guardHeader:
			g.hdr[g.hdrLen] = b[i]
			g.hdrLen++
			i++
			if g.hdrLen == 2 {
				g.hdrNeed = 2
				switch g.hdr[1] & 0x7f {
				case 126:
					g.hdrNeed += 2
				case 127:
					g.hdrNeed += 8
				}
				g.masked = g.hdr[1]&0x80 != 0
				if g.masked {
					g.hdrNeed += 4
				}
			}
			if g.hdrLen >= 2 && g.hdrLen == g.hdrNeed {
				if err := g.startPayload(); err != nil {
					return i - 1, err // gorilla never sees the whole header
				}
				if g.state == guardHeader { // an empty payload
					g.frameEnd(i)
				}
			}
		case guardPayload:
			take := uint64(len(b) - i)
			if take > g.remaining {
				take = g.remaining
			}
			if g.isClose {
				for _, c := range b[i : i+int(take)] {
					if g.masked {
						c ^= g.mask[g.closeLen%4]
					}
					g.close[g.closeLen] = c
					g.closeLen++
				}
			}
			i += int(take)
			g.remaining -= take
			if g.remaining == 0 {
				g.frameEnd(i)
				if g.isClose {
					if err := checkClosePayload(g.close[:g.closeLen]); err != nil {
						return i - 1, err
					}
				}
				g.state, g.hdrLen = guardHeader, 0
			}
		}
	}
	return len(b), nil
}

func (g *frameGuard) startPayload() error {
	n := uint64(g.hdr[1] & 0x7f)
	ext := 2
	switch n {
	case 126:
		n = uint64(g.hdr[2])<<8 | uint64(g.hdr[3])
		ext = 4
	case 127:
		n = 0
		for _, c := range g.hdr[2:10] {
			n = n<<8 | uint64(c)
		}
		ext = 10
	}
	if g.masked {
		copy(g.mask[:], g.hdr[ext:ext+4])
	}
	op, fin := g.hdr[0]&0x0f, g.hdr[0]&0x80 != 0
	rsv := g.hdr[0] & 0x70
	if g.deflate && rsv&0x40 != 0 {
		// RFC 7692 §6: RSV1 marks a compressed message on its first frame
		// only. gorilla, once compression is negotiated, would let it pass
		// on a control or continuation frame.
		switch {
		case op == 1 || op == 2:
			rsv &^= 0x40
		case op == 0 || op >= 8 && op <= 10:
			return &guardError{StatusProtocolError, "RSV1 set on a control or continuation frame"}
		}
	}
	valid := rsv == 0 && g.masked == g.server && n>>63 == 0
	switch {
	case op == 0:
		valid = valid && g.inMessage
	case op <= 2:
		valid = valid && !g.inMessage
	case op >= 8 && op <= 10:
		valid = valid && fin && n <= maxControlPayload
	default:
		valid = false
	}
	if !valid {
		// gorilla fails the connection with 1002 on this frame; the guard
		// has nothing to add and stops parsing.
		g.state = guardOff
		return nil
	}
	// Fail a message as soon as its headers announce more than the limit,
	// rather than after the bytes arrive.
	// A compressed message is held to what its inflated limit can deflate
	// to; its inflated length is checked as the reader inflates it.
	if op <= 2 {
		if op != 0 {
			g.messageLen = 0
			g.compressed = g.hdr[0]&0x40 != 0
		}
		g.messageLen += n
		g.inMessage = !fin
		limit := g.maxMessage
		if g.compressed && limit >= 0 {
			limit = maxDeflated(limit)
		}
		if limit >= 0 && g.messageLen > uint64(limit) {
			return &guardError{StatusMessageTooBig, tooBigReason(g.maxMessage)}
		}
	}
	g.isClose = g.hdr[0]&0x0f == 0x8 && g.hdr[0]&0x80 != 0 && n <= maxControlPayload
	g.closeLen = 0
	g.remaining = n
	g.dataFin = op <= 2 && fin
	g.state, g.hdrLen = guardPayload, 0
	if n == 0 {
		g.state = guardHeader
	}
	return nil
}

// frameEnd records the end of a frame's payload at index i of the bytes
// being scanned.
func (g *frameGuard) frameEnd(i int) {
	switch {
	case g.dataFin:
		g.complete++
		g.boundary = g.base + uint64(i)
		g.ctrlAfter = false
	case g.hdr[0]&0x08 != 0:
		g.ctrlAfter = true
	}
}

// pendBufs holds the buffers of direct reads between messages.
var pendBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (g *frameGuard) releasePend() {
	if cap(*g.pend) <= 256<<10 {
		*g.pend = (*g.pend)[:0]
		pendBufs.Put(g.pend)
	}
	g.pend, g.poff = nil, 0
}

func checkClosePayload(p []byte) error {
	switch {
	case len(p) == 1:
		return &guardError{StatusProtocolError, "close frame payload of 1 byte"}
	case len(p) >= 2 && !utf8.Valid(p[2:]):
		return &guardError{StatusInvalidFramePayloadData, "close reason is not valid UTF-8"}
	case len(p) >= 2 && StatusCode(p[0])<<8|StatusCode(p[1]) == StatusBadGateway:
		return &peerCloseFrame{StatusBadGateway, string(p[2:])}
	}
	return nil
}

// guardedWriter hands gorilla's Upgrade a guarded connection on Hijack.
type guardedWriter struct {
	http.ResponseWriter
	maxMessage int64
	deflate    bool
	guard      *frameGuard
}

func (w *guardedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.guard = newFrameGuard(c, guardHeader, w.maxMessage)
	w.guard.deflate = w.deflate
	return w.guard, brw, nil
}
