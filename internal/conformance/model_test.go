package conformance_test

import (
	"encoding/binary"
	"slices"
	"unicode/utf8"
)

// endKind is how a connection ends.
type endKind int

const (
	endEOF       endKind = iota // the stream ended: 1006, no Close frame
	endFail                     // the endpoint fails the connection
	endPeerClose                // the peer's valid Close frame is echoed
)

// prediction is what an RFC 6455 endpoint must do with a byte stream.
type prediction struct {
	messages []frame  // data messages, in order (op and whole payload)
	pongs    [][]byte // pong payloads, in order
	end      endKind
	wire     int     // the code of the Close frame sent (endFail, endPeerClose)
	alt      int     // another right code for the failure, or 0
	reason   *string // the Close reason to echo and report (endPeerClose)
	orEmpty  bool    // an empty Close frame is a valid echo
	api      int     // the code CloseReason reports
	or1006   bool    // failing with 1009 early, or ending with 1006 at EOF, are both right
}

// predict is the reference model: it reads the frames in s as an endpoint
// must (RFC 6455 §5–§8), stopping at the first error, the peer's Close
// frame or the end of s. fromClient says who wrote s: a client's frames
// must be masked, a server's must not. limit is MaxMessageSize (inclusive).
func predict(s []byte, fromClient bool, limit int) prediction {
	var p prediction
	fail := func(code int) prediction {
		p.end, p.wire, p.api = endFail, code, code
		return p
	}
	var (
		inMsg bool
		msgOp byte
		msg   []byte
	)
	for {
		if len(s) < 2 {
			p.end, p.api = endEOF, 1006
			return p
		}
		fin, rsv, op := s[0]&0x80 != 0, s[0]>>4&7, s[0]&0xf
		masked, n := s[1]&0x80 != 0, uint64(s[1]&0x7f)
		control := op >= 8
		switch {
		case rsv != 0, op >= 3 && op <= 7, op >= 11:
			return fail(1002)
		case control && (n > 125 || !fin):
			return fail(1002)
		case (op == opText || op == opBinary) && inMsg, op == opCont && !inMsg:
			return fail(1002)
		case masked != fromClient:
			return fail(1002)
		}
		s = s[2:]
		switch n {
		case 126:
			if len(s) < 2 {
				p.end, p.api = endEOF, 1006
				return p
			}
			n, s = uint64(binary.BigEndian.Uint16(s)), s[2:]
		case 127:
			if len(s) < 8 {
				p.end, p.api = endEOF, 1006
				return p
			}
			n, s = binary.BigEndian.Uint64(s), s[8:]
			if n>>63 != 0 {
				return fail(1002)
			}
		}
		var key [4]byte
		if masked {
			if len(s) < 4 {
				p.end, p.api = endEOF, 1006
				return p
			}
			copy(key[:], s)
			s = s[4:]
		}
		avail := min(n, uint64(len(s)))
		if !control && uint64(len(msg))+n > uint64(limit) {
			// Over the limit: an endpoint may fail at the header, or
			// once more than limit bytes arrived; if they never do,
			// the stream ends first.
			p.or1006 = uint64(len(msg))+avail <= uint64(limit)
			return fail(1009)
		}
		if avail < n {
			// Strict UTF-8 (Autobahn 6.4.x): text fails as soon as the
			// bytes that arrived cannot begin valid UTF-8.
			if !control && (op == opText || op == opCont && msgOp == opText) &&
				!textCanContinue(append(slices.Clip(msg), unmask(s[:avail], key)...)) {
				return fail(1007)
			}
			p.end, p.api = endEOF, 1006
			return p
		}
		payload := make([]byte, n)
		copy(payload, s)
		s = s[n:]
		for i := range payload {
			payload[i] ^= key[i&3]
		}
		switch op {
		case opPing:
			p.pongs = append(p.pongs, payload)
		case opPong:
		case opClose:
			a := closeVerdict(payload)
			if !a.echo {
				p.alt = a.alt
				return fail(a.wire)
			}
			p.end, p.wire, p.api, p.reason, p.orEmpty = endPeerClose, a.wire, a.api, &a.reason, len(payload) == 0
			return p
		default:
			if op != opCont {
				inMsg, msgOp, msg = true, op, nil
			}
			msg = append(msg, payload...)
			if msgOp == opText && !textCanContinue(msg) {
				return fail(1007)
			}
			if fin {
				inMsg = false
				if msgOp == opText && !utf8.Valid(msg) {
					return fail(1007)
				}
				p.messages = append(p.messages, frame{fin: true, op: msgOp, payload: msg})
				msg = nil
			}
		}
	}
}

func unmask(b []byte, key [4]byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[i] = b[i] ^ key[i&3]
	}
	return out
}

// textCanContinue reports whether some continuation makes b valid UTF-8:
// b is valid but for one character cut off at its end, which appended
// bytes complete (all 64 values tried for the one byte whose range
// depends on the first; the others are any continuation byte).
func textCanContinue(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	for k := 1; k <= 3 && k <= len(b); k++ {
		head, tail := b[:len(b)-k], b[len(b)-k:]
		if !utf8.Valid(head) {
			continue
		}
		for total := k + 1; total <= 4; total++ {
			for c := 0x80; c <= 0xbf; c++ {
				r := append(slices.Clip(tail), 0x80, 0x80, 0x80)[:total]
				if k == 1 {
					r[1] = byte(c)
				}
				if utf8.Valid(r) && utf8.RuneCount(r) == 1 {
					return true
				}
			}
		}
	}
	return false
}
