package wsconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose Read hands out chunks one at a time, so
// that a test decides where the guard's reads split the stream.
type scriptConn struct {
	net.Conn // nil: only Read is used
	chunks   [][]byte
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// frameSpec is one frame to put on the wire.
type frameSpec struct {
	fin     bool
	rsv     byte // 0x40 RSV1, 0x20 RSV2, 0x10 RSV3
	op      byte
	masked  bool
	payload []byte
	length  uint64 // declared length when declare is set, else len(payload)
	declare bool
	form    int // 0: shortest; 126 or 127: that length form
}

var testMask = [4]byte{0xff, 0xff, 0xff, 0xff} // flips every bit: a reason must be unmasked to be read

func (f frameSpec) bytes() []byte {
	b0 := f.rsv | f.op
	if f.fin {
		b0 |= 0x80
	}
	n := uint64(len(f.payload))
	if f.declare {
		n = f.length
	}
	var mask byte
	if f.masked {
		mask = 0x80
	}
	out := []byte{b0}
	form := f.form
	if form == 0 {
		switch {
		case n < 126:
		case n <= 0xffff:
			form = 126
		default:
			form = 127
		}
	}
	switch form {
	case 0:
		out = append(out, mask|byte(n))
	case 126:
		out = append(out, mask|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	case 127:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, n)
	}
	if f.masked {
		out = append(out, testMask[:]...)
	}
	for i, c := range f.payload {
		if f.masked {
			c ^= testMask[i%4]
		}
		out = append(out, c)
	}
	return out
}

func closePayload(code StatusCode, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

func stream(frames ...frameSpec) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f.bytes()...)
	}
	return b
}

// guardRun feeds data to a new guard in the given chunks and returns the
// bytes it handed on, the error it ended with (nil at EOF) and the guard.
func guardRun(t *testing.T, state int, maxMessage int64, deflate bool, chunks [][]byte) ([]byte, error, *frameGuard) {
	t.Helper()
	g := newFrameGuard(&scriptConn{chunks: chunks}, state, maxMessage)
	g.deflate = deflate
	var passed []byte
	buf := make([]byte, 1<<17)
	for range 1 << 20 {
		n, err := g.Read(buf)
		passed = append(passed, buf[:n]...)
		if err == io.EOF {
			return passed, nil, g
		}
		if err != nil {
			if n2, err2 := g.Read(buf); n2 != 0 || err2 != err {
				t.Fatalf("Read after the error = %d, %v; want 0 and the same error %v", n2, err2, err)
			}
			return passed, err, g
		}
	}
	t.Fatal("guard made no progress")
	return nil, nil, nil
}

// splits returns the ways the tests cut a stream into reads: whole, at
// every byte boundary into two (only near the ends for long streams), and
// one byte at a time.
func splits(data []byte) [][][]byte {
	out := [][][]byte{{data}}
	for k := 1; k < len(data); k++ {
		if len(data) > 2048 && k > 32 && k < len(data)-32 {
			continue
		}
		out = append(out, [][]byte{data[:k], data[k:]})
	}
	var bytewise [][]byte
	for i := range data {
		bytewise = append(bytewise, data[i:i+1])
	}
	return append(out, bytewise)
}

const (
	opCont, opText, opBinary, opClose, opPing, opPong = 0, 1, 2, 8, 9, 10
)

const upgradeResponse = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"

// Well-formed streams pass through whole, however the reads split them,
// and leave the guard parsing (expecting the next frame header).
func TestGuardPassesValidFrames(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 200)
	for _, tc := range []struct {
		name    string
		state   int
		deflate bool
		data    []byte
	}{
		{"server: text, binary 16-bit length, ping, pong, empty close", guardHeader, false, stream(
			frameSpec{fin: true, op: opText, masked: true, payload: []byte("hello")},
			frameSpec{fin: true, op: opBinary, masked: true, payload: big},
			frameSpec{fin: true, op: opPing, masked: true, payload: []byte("p")},
			frameSpec{fin: true, op: opPong, masked: true},
			frameSpec{fin: true, op: opClose, masked: true},
		)},
		{"server: fragmented text with a ping between", guardHeader, false, stream(
			frameSpec{op: opText, masked: true, payload: []byte("hel")},
			frameSpec{fin: true, op: opPing, masked: true, payload: []byte("mid")},
			frameSpec{op: opCont, masked: true, payload: []byte("l")},
			frameSpec{fin: true, op: opCont, masked: true, payload: []byte("o")},
		)},
		{"server: 64-bit length", guardHeader, false, stream(
			frameSpec{fin: true, op: opBinary, masked: true, payload: bytes.Repeat([]byte{7}, 70000)},
			frameSpec{fin: true, op: opPing, masked: true},
		)},
		{"server: 64-bit length form for a short payload", guardHeader, false, stream(
			frameSpec{fin: true, op: opBinary, masked: true, payload: []byte("abc"), form: 127},
		)},
		{"server: masked close whose reason is only UTF-8 once unmasked", guardHeader, false, stream(
			frameSpec{fin: true, op: opClose, masked: true, payload: closePayload(StatusNormalClosure, "ok, bye")},
		)},
		{"server: RSV1 on the first frame of a compressed message", guardHeader, true, stream(
			frameSpec{rsv: 0x40, op: opText, masked: true, payload: []byte{1, 2}},
			frameSpec{fin: true, op: opCont, masked: true, payload: []byte{3}},
		)},
		{"client: upgrade response, then unmasked frames", guardHTTP, false, append([]byte(upgradeResponse), stream(
			frameSpec{fin: true, op: opText, payload: []byte("hi")},
			frameSpec{fin: true, op: opClose, payload: closePayload(4000, "done")},
		)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunks := range splits(tc.data) {
				passed, err, g := guardRun(t, tc.state, 1<<20, tc.deflate, chunks)
				if err != nil || !bytes.Equal(passed, tc.data) {
					t.Fatalf("reads of %d: passed %d of %d bytes, err %v", len(chunks), len(passed), len(tc.data), err)
				}
				if g.state != guardHeader || g.hdrLen != 0 {
					t.Fatalf("reads of %d: ended in state %d with %d header bytes, want at a frame boundary", len(chunks), g.state, g.hdrLen)
				}
			}
		})
	}
}

// Frames gorilla itself rejects with 1002 pass through unchanged, and the
// guard stops parsing (guardOff) rather than guess at what follows.
func TestGuardLeavesInvalidFramesToGorilla(t *testing.T) {
	for _, tc := range []struct {
		name    string
		state   int
		deflate bool
		frame   frameSpec
	}{
		{"RSV1 without compression", guardHeader, false, frameSpec{fin: true, rsv: 0x40, op: opText, masked: true, payload: []byte("x")}},
		{"RSV2", guardHeader, true, frameSpec{fin: true, rsv: 0x20, op: opText, masked: true, payload: []byte("x")}},
		{"RSV3", guardHeader, false, frameSpec{fin: true, rsv: 0x10, op: opBinary, masked: true, payload: []byte("x")}},
		{"unmasked frame to a server", guardHeader, false, frameSpec{fin: true, op: opText, payload: []byte("x")}},
		{"masked frame to a client", guardHTTP, false, frameSpec{fin: true, op: opText, masked: true, payload: []byte("x")}},
		{"64-bit length with the most significant bit set", guardHeader, false, frameSpec{fin: true, op: opBinary, masked: true, declare: true, length: 1 << 63}},
		{"fragmented control frame", guardHeader, false, frameSpec{op: opPing, masked: true, payload: []byte("x")}},
		{"control frame over 125 bytes", guardHeader, false, frameSpec{fin: true, op: opPing, masked: true, payload: bytes.Repeat([]byte("x"), 126)}},
		{"continuation outside a message", guardHeader, false, frameSpec{fin: true, op: opCont, masked: true, payload: []byte("x")}},
		{"reserved data opcode", guardHeader, false, frameSpec{fin: true, op: 3, masked: true}},
		{"reserved control opcode", guardHeader, false, frameSpec{fin: true, op: 11, masked: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.frame.bytes()
			if tc.state == guardHTTP {
				data = append([]byte(upgradeResponse), data...)
			}
			// A frame that would be valid follows: a guard still parsing
			// would end at a frame boundary, not off.
			data = append(data, frameSpec{fin: true, op: opText, masked: tc.state == guardHeader, payload: []byte("z")}.bytes()...)
			for _, chunks := range splits(data) {
				passed, err, g := guardRun(t, tc.state, 1<<20, tc.deflate, chunks)
				if err != nil || !bytes.Equal(passed, data) {
					t.Fatalf("reads of %d: passed %d of %d bytes, err %v; want everything passed to gorilla", len(chunks), len(passed), len(data), err)
				}
				if g.state != guardOff {
					t.Fatalf("reads of %d: state %d, want guardOff", len(chunks), g.state)
				}
			}
		})
	}

	// A data frame while a fragmented message is open.
	data := stream(
		frameSpec{op: opText, masked: true, payload: []byte("a")},
		frameSpec{fin: true, op: opText, masked: true, payload: []byte("b")},
	)
	for _, chunks := range splits(data) {
		if passed, err, g := guardRun(t, guardHeader, 1<<20, false, chunks); err != nil || !bytes.Equal(passed, data) || g.state != guardOff {
			t.Fatalf("new message inside a message: passed %d of %d, err %v, state %d", len(passed), len(data), err, g.state)
		}
	}
}

// guardFailure is what a failing stream must produce.
type guardFailure struct {
	err  error // *guardError or *peerCloseFrame
	held int   // bytes of the stream never handed on (counted from the end)
}

// Bad Close frames and oversized messages fail with the right code, and
// gorilla never sees the frame whole: the Close frame's last byte, or the
// announcing header's last byte, is held back.
func TestGuardFails(t *testing.T) {
	// A frame that passes comes first; a client's comes after the response.
	serverPrefix := frameSpec{fin: true, op: opText, masked: true, payload: []byte("before")}.bytes()
	clientPrefix := append([]byte(upgradeResponse), frameSpec{fin: true, op: opText, payload: []byte("before")}.bytes()...)
	for _, tc := range []struct {
		name    string
		state   int
		max     int64
		deflate bool
		data    []byte
		want    guardFailure
	}{
		{"close payload of 1 byte", guardHeader, 1 << 20, false,
			frameSpec{fin: true, op: opClose, masked: true, payload: []byte{0x03}}.bytes(),
			guardFailure{&guardError{StatusProtocolError, "close frame payload of 1 byte"}, 1}},
		{"close reason not UTF-8", guardHeader, 1 << 20, false,
			frameSpec{fin: true, op: opClose, masked: true, payload: closePayload(StatusNormalClosure, "bad \xff")}.bytes(),
			guardFailure{&guardError{StatusInvalidFramePayloadData, "close reason is not valid UTF-8"}, 1}},
		{"close with 1014, unknown to gorilla", guardHeader, 1 << 20, false,
			frameSpec{fin: true, op: opClose, masked: true, payload: closePayload(StatusBadGateway, "upstream")}.bytes(),
			guardFailure{&peerCloseFrame{StatusBadGateway, "upstream"}, 1}},
		{"client: unmasked close reason not UTF-8", guardHTTP, 1 << 20, false,
			frameSpec{fin: true, op: opClose, payload: closePayload(4000, "\xc3")}.bytes(),
			guardFailure{&guardError{StatusInvalidFramePayloadData, "close reason is not valid UTF-8"}, 1}},
		{"declared length over the limit", guardHeader, 100, false,
			frameSpec{fin: true, op: opBinary, masked: true, declare: true, length: 101}.bytes(),
			guardFailure{&guardError{StatusMessageTooBig, tooBigReason(100)}, 1}}, // the last mask byte
		{"declared 64-bit length far over the limit", guardHeader, 100, false,
			frameSpec{fin: true, op: opBinary, masked: true, declare: true, length: 1 << 40}.bytes(),
			guardFailure{&guardError{StatusMessageTooBig, tooBigReason(100)}, 1}},
		{"fragments that add up over the limit", guardHeader, 100, false, stream(
			frameSpec{op: opText, masked: true, payload: bytes.Repeat([]byte("a"), 60)},
			frameSpec{fin: true, op: opCont, masked: true, declare: true, length: 41},
		), guardFailure{&guardError{StatusMessageTooBig, tooBigReason(100)}, 1}},
		{"RSV1 on a continuation frame", guardHeader, 1 << 20, true, stream(
			frameSpec{rsv: 0x40, op: opText, masked: true, payload: []byte{1}},
			frameSpec{fin: true, rsv: 0x40, op: opCont, masked: true, payload: []byte{2}},
		), guardFailure{&guardError{StatusProtocolError, "RSV1 set on a control or continuation frame"}, 1 + 1}}, // and its payload
		{"RSV1 on a ping", guardHeader, 1 << 20, true,
			frameSpec{fin: true, rsv: 0x40, op: opPing, masked: true}.bytes(),
			guardFailure{&guardError{StatusProtocolError, "RSV1 set on a control or continuation frame"}, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := serverPrefix
			if tc.state == guardHTTP {
				prefix = clientPrefix
			}
			data := append(append([]byte(nil), prefix...), tc.data...)
			data = append(data, 0x81, 0x80, 0, 0, 0, 0) // never reached
			for _, chunks := range splits(data) {
				passed, err, _ := guardRun(t, tc.state, tc.max, tc.deflate, chunks)
				if fmt.Sprintf("%#v", err) != fmt.Sprintf("%#v", tc.want.err) {
					t.Fatalf("reads of %d: err %#v, want %#v", len(chunks), err, tc.want.err)
				}
				wantPassed := len(data) - 6 - tc.want.held
				if !bytes.Equal(passed, data[:wantPassed]) {
					t.Fatalf("reads of %d: passed %d bytes, want the first %d", len(chunks), len(passed), wantPassed)
				}
			}
		})
	}
}

// Through a proxy the guard starts off: nothing is parsed, every byte
// passes, garbage included.
func TestGuardOff(t *testing.T) {
	data := []byte("HTTP/1.1 200 Connection established\r\n\r\n\x88\x01\x03 anything")
	for _, chunks := range splits(data) {
		if passed, err, g := guardRun(t, guardOff, 1, false, chunks); err != nil || !bytes.Equal(passed, data) || g.state != guardOff {
			t.Fatalf("guardOff: passed %d of %d, err %v", len(passed), len(data), err)
		}
	}
}

// A Read error from the socket is passed on with the bytes before it.
func TestGuardPassesSocketErrors(t *testing.T) {
	boom := errors.New("boom")
	g := newFrameGuard(&errConn{data: []byte{0x81, 0x82}, err: boom}, guardHeader, 1<<20)
	n, err := g.Read(make([]byte, 16))
	if n != 2 || err != boom {
		t.Fatalf("Read = %d, %v; want 2 bytes and the socket's error", n, err)
	}
}

type errConn struct {
	net.Conn
	data []byte
	err  error
}

func (c *errConn) Read(p []byte) (int, error) { return copy(p, c.data), c.err }

// An interrupted guard fails every write, and keeps the socket's write
// deadline in the past however gorilla resets it, until resume.
func TestGuardInterruptsWrites(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go io.Copy(io.Discard, b)
	g := newFrameGuard(a, guardHeader, 1<<20)
	g.interrupt()
	if _, err := g.Write([]byte("x")); err != errWriteInterrupted {
		t.Fatalf("Write while interrupted = %v", err)
	}
	if err := g.SetWriteDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Conn.Write([]byte("x")); err == nil {
		t.Fatal("the socket's deadline was reset while interrupted")
	}
	g.resume()
	if _, err := g.Write([]byte("x")); err != nil {
		t.Fatalf("Write after resume = %v", err)
	}
}
