package conformance_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"
)

// Opcodes (RFC 6455 §5.2).
const (
	opCont   byte = 0x0
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPing   byte = 0x9
	opPong   byte = 0xA
)

// maskMode says whether an encoded frame carries a masking key.
type maskMode int

const (
	maskAsRole maskMode = iota // masked iff the sender is a client
	maskOn
	maskOff
)

// frame is one WebSocket frame as written or read by a raw peer.
type frame struct {
	fin     bool
	rsv     byte // the three reserved bits as a number: 4 is RSV1, 2 RSV2, 1 RSV3
	op      byte
	payload []byte
	mask    maskMode // encoding only
	masked  bool     // decoding only: the frame carried a masking key
}

func (f frame) String() string {
	p := f.payload
	if len(p) > 32 {
		p = p[:32]
	}
	return fmt.Sprintf("{fin=%t rsv=%d op=%#x masked=%t len=%d payload=%q}", f.fin, f.rsv, f.op, f.masked, len(f.payload), p)
}

func dataFrame(op byte, payload []byte) frame { return frame{fin: true, op: op, payload: payload} }
func textFrame(s string) frame                { return dataFrame(opText, []byte(s)) }
func binFrame(b []byte) frame                 { return dataFrame(opBinary, b) }
func pingFrame(b []byte) frame                { return dataFrame(opPing, b) }
func pongFrame(b []byte) frame                { return dataFrame(opPong, b) }

// fragment returns a non-final frame with opcode op (opCont for the middle).
func fragment(op byte, payload []byte) frame { return frame{op: op, payload: payload} }

// closeFrame returns a Close frame with code and reason.
func closeFrame(code int, reason string) frame {
	return dataFrame(opClose, closePayload(code, reason))
}

func closePayload(code int, reason string) []byte {
	b := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	return append(b, reason...)
}

// fixedKey is the masking key of every masked frame we write: a fixed key
// keeps the bytes on the wire reproducible.
var fixedKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// appendHeader appends a frame header announcing length payload bytes.
func appendHeader(b []byte, fin bool, rsv, op byte, masked bool, length uint64) []byte {
	b0 := rsv<<4 | op&0xf
	if fin {
		b0 |= 0x80
	}
	var m byte
	if masked {
		m = 0x80
	}
	switch {
	case length <= 125:
		b = append(b, b0, m|byte(length))
	case length <= 0xffff:
		b = append(b, b0, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(length))
	default:
		b = append(b, b0, m|127)
		b = binary.BigEndian.AppendUint64(b, length)
	}
	if masked {
		b = append(b, fixedKey[:]...)
	}
	return b
}

// appendFrame encodes f; client says whether the sender is a client, which
// decides masking for maskAsRole.
func appendFrame(b []byte, f frame, client bool) []byte {
	masked := f.mask == maskOn || (f.mask == maskAsRole && client)
	b = appendHeader(b, f.fin, f.rsv, f.op, masked, uint64(len(f.payload)))
	start := len(b)
	b = append(b, f.payload...)
	if masked {
		maskBytes(b[start:])
	}
	return b
}

func maskBytes(p []byte) {
	for i := range p {
		p[i] ^= fixedKey[i&3]
	}
}

// maxReadPayload bounds what readFrame allocates for one frame.
const maxReadPayload = 64 << 20

// readFrame decodes one frame, unmasking its payload.
func readFrame(r *bufio.Reader) (frame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	f := frame{fin: h[0]&0x80 != 0, rsv: h[0] >> 4 & 7, op: h[0] & 0xf, masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return frame{}, noEOF(err)
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return frame{}, noEOF(err)
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > maxReadPayload {
		return frame{}, fmt.Errorf("frame announces %d payload bytes", n)
	}
	var key [4]byte
	if f.masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return frame{}, noEOF(err)
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, noEOF(err)
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= key[i&3]
		}
	}
	return f, nil
}

// noEOF turns an EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseClose splits a Close payload; ok is false for a 1-byte payload.
func parseClose(p []byte) (code int, reason string, ok bool) {
	switch len(p) {
	case 0:
		return 1005, "", true
	case 1:
		return 0, "", false
	}
	return int(binary.BigEndian.Uint16(p)), string(p[2:]), true
}

// validWireCode reports whether code may appear in a Close frame (RFC 6455
// §7.4.1 and the IANA registry: 1012–1014 were registered later).
func validWireCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// closeAnswer is what an endpoint must do with a Close frame it receives.
type closeAnswer struct {
	echo   bool   // a valid Close frame: answer with the same code and reason
	wire   int    // the code to send: the echoed one (1000 for an empty frame) or the failure's
	alt    int    // another code that is right for the failure, or 0
	api    int    // the code to report: the peer's (1005 for an empty frame) or the failure's
	reason string // the reason to echo and report
}

// closeVerdict decides what an endpoint must do with the Close payload p:
// echo a valid one, fail a 1-byte, oversized or invalid-code one with 1002
// and a reason that is not UTF-8 with 1007. When both the code and the
// reason are bad, either failure code is right.
func closeVerdict(p []byte) closeAnswer {
	code, reason, ok := parseClose(p)
	switch {
	case len(p) > 125, !ok:
		return closeAnswer{wire: 1002, api: 1002}
	case len(p) == 0:
		return closeAnswer{echo: true, wire: 1000, api: 1005}
	case !validWireCode(code):
		a := closeAnswer{wire: 1002, api: 1002}
		if !utf8.ValidString(reason) {
			a.alt = 1007
		}
		return a
	case !utf8.ValidString(reason):
		return closeAnswer{wire: 1007, api: 1007}
	}
	return closeAnswer{echo: true, wire: code, api: code, reason: reason}
}
