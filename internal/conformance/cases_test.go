package conformance_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wsCase is one conformance case, run in both roles: a raw peer sends
// frames (send), the closing handshake follows, and both the Close frame
// wsconn puts on the wire and the reason its API reports are checked.
type wsCase struct {
	id   string // the Autobahn TestSuite case it mirrors; "E" marks our additions
	desc string
	// maxSize is wsconn's MaxMessageSize; 0 means 4 MiB.
	maxSize int64
	// chop > 0 delivers the peer's bytes in pieces of this many bytes.
	chop int
	// send writes the case's frames and checks wsconn's answers.
	send func(p *peer)
	// peerCloses: after send, the peer starts a normal closing handshake
	// (1000) that wsconn must echo. Otherwise wsconn must send Close first,
	// or echo the Close frame send wrote.
	peerCloses bool
	wire       closeWant // the Close frame wsconn must send
	api        closeWant // what Receive and CloseReason must report
	serverOnly bool      // the case exists for the server role only
	clientOnly bool
	timeout    time.Duration // bounds the case; 0 means caseTimeout
	// offer and response, when set, negotiate permessage-deflate (RFC
	// 7692): the raw client offers offer, the raw server answers response.
	offer, response string
	// streamed: wsconn's application echoes with Reader and Writer
	// (stream_test.go).
	streamed bool
}

// ext is what the raw peer offers or answers in role.
func (c wsCase) ext(role string) string {
	if role == "server" {
		return c.offer
	}
	return c.response
}

func (c wsCase) roles() []string {
	switch {
	case c.serverOnly:
		return []string{"server"}
	case c.clientOnly:
		return []string{"client"}
	}
	return []string{"server", "client"}
}

// expected is the case's expectation in CONFORMANCE.md.
func (c wsCase) expected() string {
	if c.peerCloses {
		return "echo, close 1000"
	}
	if c.api.code == c.wire.code {
		return "close " + c.wire.String()
	}
	return fmt.Sprintf("close %v, reports %v", c.wire, c.api)
}

func str(s string) *string { return &s }

// echo is a case that must succeed: the peer then closes normally.
func echo(id, desc string, send func(p *peer)) wsCase {
	return wsCase{id: id, desc: desc, send: send, peerCloses: true,
		wire: closeWant{code: 1000, reason: str("")}, api: closeWant{code: 1000, reason: str("")}}
}

// fail is a case wsconn must end by failing the connection with code.
func fail(id, desc string, code int, send func(p *peer)) wsCase {
	return wsCase{id: id, desc: desc, send: send, wire: closeWant{code: code}, api: closeWant{code: code}}
}

// peerClose is a case where the peer sends a Close frame with payload;
// closeVerdict says whether wsconn must echo it or fail.
func peerClose(id, desc string, payload []byte) wsCase {
	a := closeVerdict(payload)
	c := wsCase{id: id, desc: desc, send: func(p *peer) { p.write(dataFrame(opClose, payload)) }}
	c.wire, c.api = a.want()
	c.wire.orEmpty = a.echo && len(payload) == 0
	return c
}

func chopped(c wsCase, n int) wsCase { c.chop = n; return c }

func withMax(c wsCase, n int64) wsCase { c.maxSize = n; return c }

// echoMsg sends one message and expects it back.
func echoMsg(op byte, payload []byte) func(p *peer) {
	return func(p *peer) {
		p.write(dataFrame(op, payload))
		p.expectMessage(op, payload)
	}
}

// textOf returns n bytes of valid UTF-8 text (mixing 1- to 4-byte
// characters, padded with ASCII).
func textOf(n int) []byte {
	const unit = "Hello, wörld € 𝄞 " // 1-, 2-, 3- and 4-byte characters
	var b []byte
	for len(b)+len(unit) <= n {
		b = append(b, unit...)
	}
	return append(b, bytes.Repeat([]byte("*"), n-len(b))...)
}

func binOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// splitFrames cuts a message into fragments of at most n bytes.
func splitFrames(op byte, payload []byte, n int) []frame {
	var fs []frame
	for first := true; first || len(payload) > 0; first = false {
		k := min(n, len(payload))
		f := fragment(opCont, payload[:k])
		if first {
			f.op = op
		}
		payload = payload[k:]
		f.fin = len(payload) == 0
		fs = append(fs, f)
	}
	return fs
}

const limit = 64 << 10 // MaxMessageSize of the 9.x cases

// cases is the conformance table, in the Autobahn TestSuite's order.
var cases = func() []wsCase {
	var cs []wsCase
	add := func(c ...wsCase) { cs = append(cs, c...) }

	// 1.x framing: echo of text and binary messages.
	for i, n := range []int{0, 125, 126, 127, 128, 65535, 65536} {
		id := []string{"1", "2", "3", "4", "5", "6", "7"}[i]
		add(echo("1.1."+id, fmt.Sprintf("text, %d bytes", n), echoMsg(opText, textOf(n))))
		add(echo("1.2."+id, fmt.Sprintf("binary, %d bytes", n), echoMsg(opBinary, binOf(n))))
	}
	add(chopped(echo("1.1.8", "text, 65536 bytes, written in 997-byte pieces", echoMsg(opText, textOf(65536))), 997))
	add(chopped(echo("1.2.8", "binary, 65536 bytes, written in 997-byte pieces", echoMsg(opBinary, binOf(65536))), 997))
	add(echo("9.1.3", "text, 1 MiB", echoMsg(opText, textOf(1<<20))))
	add(echo("9.2.3", "binary, 1 MiB", echoMsg(opBinary, binOf(1<<20))))

	// 2.x pings and pongs.
	pingPong := func(payload []byte) func(p *peer) {
		return func(p *peer) {
			p.write(pingFrame(payload))
			p.expectFrame(opPong, payload)
		}
	}
	add(echo("2.1", "ping without payload is answered", pingPong(nil)))
	add(echo("2.2", "ping with a text payload is answered with it", pingPong([]byte("Hello, world!"))))
	add(echo("2.3", "ping with a binary payload is answered with it", pingPong([]byte{0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff})))
	add(echo("2.4", "ping with a 125-byte payload is answered with it", pingPong(binOf(125))))
	add(fail("2.5", "ping with a 126-byte payload", 1002, func(p *peer) { p.write(pingFrame(binOf(126))) }))
	add(chopped(echo("2.6", "ping with 125 bytes, written one byte at a time", pingPong(binOf(125))), 1))
	add(echo("2.7", "unsolicited pong without payload is ignored", func(p *peer) {
		p.write(pongFrame(nil))
		echoMsg(opText, []byte("after pong"))(p)
	}))
	add(echo("2.8", "unsolicited pong with payload is ignored", func(p *peer) {
		p.write(pongFrame([]byte("unsolicited pong payload")))
		echoMsg(opText, []byte("after pong"))(p)
	}))
	add(echo("2.9", "unsolicited pong, then ping", func(p *peer) {
		p.write(pongFrame([]byte("unsolicited pong payload")), pingFrame([]byte("ping payload")))
		p.expectFrame(opPong, []byte("ping payload"))
	}))
	add(echo("2.10", "10 pings in one write, answered in order", func(p *peer) {
		var fs []frame
		for i := range 10 {
			fs = append(fs, pingFrame([]byte("payload-"+strconv.Itoa(i))))
		}
		p.write(fs...)
		for i := range 10 {
			p.expectFrame(opPong, []byte("payload-"+strconv.Itoa(i)))
		}
	}))

	// 3.x reserved bits (no extension was negotiated).
	rsv := func(bits byte, f frame) frame { f.rsv = bits; return f }
	hello := []byte("Hello, world!")
	add(fail("3.1", "text with RSV=1", 1002, func(p *peer) { p.write(rsv(1, textFrame("Hello, world!"))) }))
	add(fail("3.2", "text, then text with RSV=2, then ping", 1002, func(p *peer) {
		echoMsg(opText, hello)(p)
		p.write(rsv(2, textFrame("Hello, world!")), pingFrame(nil))
	}))
	add(chopped(fail("3.3", "text, then text with RSV=3, then ping, one byte at a time", 1002, func(p *peer) {
		echoMsg(opText, hello)(p)
		p.write(rsv(3, textFrame("Hello, world!")), pingFrame(nil))
	}), 1))
	add(fail("3.4", "text, then text with RSV=4 (RSV1, no compression negotiated), then ping", 1002, func(p *peer) {
		echoMsg(opText, hello)(p)
		p.write(rsv(4, textFrame("Hello, world!")), pingFrame(nil))
	}))
	add(fail("3.5", "binary with RSV=5", 1002, func(p *peer) { p.write(rsv(5, binFrame(binOf(8)))) }))
	add(fail("3.6", "ping with RSV=6", 1002, func(p *peer) { p.write(rsv(6, pingFrame(hello))) }))
	add(fail("3.7", "close with RSV=7", 1002, func(p *peer) { p.write(rsv(7, closeFrame(1000, ""))) }))

	// 4.x reserved opcodes.
	for i, op := range []byte{3, 4, 5, 6, 7} {
		id := fmt.Sprintf("4.1.%d", i+1)
		add(fail(id, fmt.Sprintf("text, then reserved non-control opcode %d, then ping", op), 1002, func(p *peer) {
			echoMsg(opText, hello)(p)
			p.write(dataFrame(op, hello), pingFrame(nil))
		}))
	}
	for i, op := range []byte{11, 12, 13, 14, 15} {
		id := fmt.Sprintf("4.2.%d", i+1)
		add(fail(id, fmt.Sprintf("text, then reserved control opcode %d, then ping", op), 1002, func(p *peer) {
			echoMsg(opText, hello)(p)
			p.write(dataFrame(op, hello), pingFrame(nil))
		}))
	}
	add(chopped(fail("4.2.5b", "reserved control opcode 15, one byte at a time", 1002, func(p *peer) {
		p.write(dataFrame(15, hello))
	}), 1))

	// 5.x fragmentation.
	add(fail("5.1", "ping in 2 fragments", 1002, func(p *peer) {
		p.write(fragment(opPing, []byte("frag1")), frame{fin: true, op: opCont, payload: []byte("frag2")})
	}))
	add(fail("5.2", "pong in 2 fragments", 1002, func(p *peer) {
		p.write(fragment(opPong, []byte("frag1")), frame{fin: true, op: opCont, payload: []byte("frag2")})
	}))
	add(fail("5.E1", "close in 2 fragments", 1002, func(p *peer) {
		p.write(frame{op: opClose, payload: []byte{0x03}}, frame{fin: true, op: opCont, payload: []byte{0xe8}})
	}))
	twoFrags := func(p *peer) {
		p.write(fragment(opText, []byte("fragment1")), frame{fin: true, op: opCont, payload: []byte("fragment2")})
		p.expectMessage(opText, []byte("fragment1fragment2"))
	}
	add(echo("5.3", "text in 2 fragments", twoFrags))
	add(chopped(echo("5.5", "text in 2 fragments, one byte at a time", twoFrags), 1))
	withPing := func(p *peer) {
		p.write(fragment(opText, []byte("fragment1")), pingFrame([]byte("ping")), frame{fin: true, op: opCont, payload: []byte("fragment2")})
		p.expectFrame(opPong, []byte("ping"))
		p.expectMessage(opText, []byte("fragment1fragment2"))
	}
	add(echo("5.6", "text in 2 fragments with a ping between them", withPing))
	add(chopped(echo("5.8", "text in 2 fragments with a ping between them, one byte at a time", withPing), 1))
	add(fail("5.9", "continuation (FIN) with nothing to continue, then text", 1002, func(p *peer) {
		p.write(frame{fin: true, op: opCont, payload: []byte("non-continuation payload")}, textFrame("Hello, world!"))
	}))
	add(fail("5.12", "continuation (no FIN) with nothing to continue, then text", 1002, func(p *peer) {
		p.write(fragment(opCont, []byte("non-continuation payload")), textFrame("Hello, world!"))
	}))
	add(fail("5.15", "text in 2 fragments, then a continuation with nothing to continue", 1002, func(p *peer) {
		p.write(fragment(opText, []byte("fragment1")), frame{fin: true, op: opCont, payload: []byte("fragment2")})
		p.expectMessage(opText, []byte("fragment1fragment2"))
		p.write(fragment(opCont, []byte("fragment3")), frame{fin: true, op: opCont, payload: []byte("fragment4")})
	}))
	add(fail("5.18", "a new text frame inside a fragmented text message", 1002, func(p *peer) {
		p.write(fragment(opText, []byte("fragment1")), frame{fin: true, op: opText, payload: []byte("fragment2")})
	}))
	add(echo("5.19", "text in 5 fragments with 2 pings between them", func(p *peer) {
		p.write(fragment(opText, []byte("fragment1")), fragment(opCont, []byte("fragment2")), pingFrame([]byte("pongme 1!")),
			fragment(opCont, []byte("fragment3")), pingFrame([]byte("pongme 2!")),
			fragment(opCont, []byte("fragment4")), frame{fin: true, op: opCont, payload: []byte("fragment5")})
		p.expectFrame(opPong, []byte("pongme 1!"))
		p.expectFrame(opPong, []byte("pongme 2!"))
		p.expectMessage(opText, []byte("fragment1fragment2fragment3fragment4fragment5"))
	}))
	add(echo("5.E2", "binary in 3 fragments, the middle one empty", func(p *peer) {
		p.write(fragment(opBinary, []byte{1, 2}), fragment(opCont, nil), frame{fin: true, op: opCont, payload: []byte{3}})
		p.expectMessage(opBinary, []byte{1, 2, 3})
	}))

	// 6.x UTF-8 handling.
	valid := textOf(200)
	add(echo("6.2.1", "valid UTF-8 (1- to 4-byte characters) in one frame", echoMsg(opText, valid)))
	add(echo("6.2.3", "valid UTF-8 in 1-byte fragments (splits inside characters)", func(p *peer) {
		p.write(splitFrames(opText, valid, 1)...)
		p.expectMessage(opText, valid)
	}))
	add(echo("6.2.E1", "a 4-byte character split 1+3 and 3+1 across fragments", func(p *peer) {
		clef := []byte("𝄞")
		p.write(fragment(opText, append([]byte("a"), clef[:1]...)), frame{fin: true, op: opCont, payload: append(clef[1:], 'b')})
		p.expectMessage(opText, []byte("a𝄞b"))
		p.write(fragment(opText, clef[:3]), frame{fin: true, op: opCont, payload: clef[3:]})
		p.expectMessage(opText, clef)
	}))
	invalid := []byte("κόσμε\xed\xa0\x80edited")
	add(fail("6.3.1", "invalid UTF-8 (a UTF-16 surrogate) in one frame", 1007, func(p *peer) {
		p.write(dataFrame(opText, invalid))
	}))
	add(fail("6.3.2", "invalid UTF-8 in 1-byte fragments", 1007, func(p *peer) {
		p.write(splitFrames(opText, invalid, 1)...)
	}))
	add(fail("6.E1", "a 4-byte character cut short at a fragment boundary", 1007, func(p *peer) {
		clef := []byte("𝄞")
		p.write(fragment(opText, append([]byte("a"), clef[:2]...)), frame{fin: true, op: opCont, payload: []byte("bc")})
	}))
	for i, bad := range []string{"\xc0\x80", "\xe0\x80\xaf", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\x80", "ab\xf0\x9f\x98"} {
		add(fail(fmt.Sprintf("6.E2.%d", i+1), fmt.Sprintf("invalid UTF-8 %q", bad), 1007, func(p *peer) {
			p.write(dataFrame(opText, []byte(bad)))
		}))
	}
	add(echo("6.E3", "invalid UTF-8 in a binary message is not checked", echoMsg(opBinary, invalid)))
	add(strictCases()...) // 6.4.x: fail as soon as the text is invalid

	// 7.x closing.
	add(echo("7.1.1", "text, then a normal close", echoMsg(opText, hello)))
	add(peerClose("7.1.2", "close, then close again (the second is never read)", closePayload(1000, "")))
	cs[len(cs)-1].send = func(p *peer) { p.write(closeFrame(1000, ""), closeFrame(1000, "")) }
	add(peerClose("7.1.3", "close, then ping (no pong)", closePayload(1000, "")))
	cs[len(cs)-1].send = func(p *peer) { p.write(closeFrame(1000, ""), pingFrame([]byte("ping"))) }
	add(peerClose("7.1.4", "close, then text (not delivered)", closePayload(1000, "")))
	cs[len(cs)-1].send = func(p *peer) { p.write(closeFrame(1000, ""), textFrame("Hello, world!")) }
	add(peerClose("7.1.5", "text fragment, close, then the last fragment", closePayload(1000, "")))
	cs[len(cs)-1].send = func(p *peer) {
		p.write(fragment(opText, []byte("fragment1")), closeFrame(1000, ""), frame{fin: true, op: opCont, payload: []byte("fragment2")})
	}
	add(peerClose("7.3.1", "close without payload", nil))
	add(peerClose("7.3.2", "close with a 1-byte payload", []byte{0x03}))
	add(peerClose("7.3.3", "close with a code and no reason", closePayload(1000, "")))
	add(peerClose("7.3.4", "close with a code and a reason", closePayload(1000, "Hello World!")))
	add(peerClose("7.3.5", "close with a 123-byte reason", closePayload(1000, strings.Repeat("*", 123))))
	add(peerClose("7.3.6", "close with a 124-byte reason (126-byte payload)", closePayload(1000, strings.Repeat("*", 124))))
	add(peerClose("7.5.1", "close with a reason that is not UTF-8", closePayload(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")))
	for _, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		add(peerClose("7.7."+strconv.Itoa(code), fmt.Sprintf("close with valid code %d and a reason", code), closePayload(code, "reason "+strconv.Itoa(code))))
	}
	for _, code := range []int{1012, 1013, 1014} {
		add(peerClose("7.7.E"+strconv.Itoa(code), fmt.Sprintf("close with IANA-registered code %d (wsconn sends it too)", code), closePayload(code, "reason "+strconv.Itoa(code))))
	}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		add(peerClose("7.9."+strconv.Itoa(code), fmt.Sprintf("close with invalid code %d", code), closePayload(code, "")))
	}
	c := fail("7.E1", "an unmasked frame from the client", 1002, func(p *peer) {
		f := textFrame("Hello, world!")
		f.mask = maskOff
		p.write(f)
	})
	c.serverOnly = true
	add(c)
	c = fail("7.E2", "a masked frame from the server", 1002, func(p *peer) {
		f := textFrame("Hello, world!")
		f.mask = maskOn
		p.write(f)
	})
	c.clientOnly = true
	add(c)

	// 9.x limits (MaxMessageSize 64 KiB, inclusive).
	over := closeWant{code: 1009, reasonHas: strconv.Itoa(limit)}
	tooBig := func(id, desc string, send func(p *peer)) wsCase {
		return withMax(wsCase{id: id, desc: desc, send: send, wire: over, api: over}, limit)
	}
	add(withMax(echo("9.E1", "text of exactly MaxMessageSize", echoMsg(opText, textOf(limit))), limit))
	add(withMax(echo("9.E2", "binary of exactly MaxMessageSize in 7 fragments", func(p *peer) {
		p.write(splitFrames(opBinary, binOf(limit), limit/7+1)...)
		p.expectMessage(opBinary, binOf(limit))
	}), limit))
	add(tooBig("9.E3", "text one byte over MaxMessageSize", func(p *peer) { p.write(dataFrame(opText, textOf(limit+1))) }))
	add(tooBig("9.E4", "binary one byte over MaxMessageSize, in fragments each under it", func(p *peer) {
		p.write(splitFrames(opBinary, binOf(limit+1), limit/3)...)
	}))
	c = tooBig("9.E5", "frame header announcing more than MaxMessageSize, payload withheld: 1009 within 2 s", func(p *peer) {
		p.writeRaw(appendHeader(nil, true, 0, opBinary, p.client, limit+1))
	})
	c.timeout = 2 * time.Second
	add(c)
	add(fail("9.E6", "64-bit payload length with the most significant bit set", 1002, func(p *peer) {
		p.writeRaw(appendHeader(nil, true, 0, opBinary, p.client, 1<<63|5))
	}))

	cs = append(cs, streamedCases(cs)...) // 5.x and 6.x through Reader and Writer
	cs = append(cs, deflateCases()...)    // 12.x, 13.x: permessage-deflate
	return cs
}()

func TestConformance(t *testing.T) {
	for _, role := range []string{"server", "client"} {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				if !slices.Contains(c.roles(), role) {
					continue
				}
				t.Run(c.id, func(t *testing.T) {
					t.Parallel()
					defer record(t, c.id, c.desc, role, c.expected())
					runCase(t, role, c)
				})
			}
		})
	}
}

func runCase(t *testing.T, role string, c wsCase) {
	timeout := c.timeout
	if timeout == 0 {
		timeout = caseTimeout
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	maxSize := c.maxSize
	if maxSize == 0 {
		maxSize = 4 << 20
	}
	if c.streamed {
		ctx = context.WithValue(ctx, appKey{}, streamEcho)
	}
	p, results := setup(t, ctx, role, maxSize, c.ext(role))
	p.streamed = c.streamed
	p.chop = c.chop
	c.send(p)
	p.chop = 0
	if c.peerCloses {
		p.write(closeFrame(1000, ""))
	}
	got := p.expectClose(c.wire)
	if !p.sentClose {
		p.write(dataFrame(opClose, got)) // complete the handshake wsconn started
	}
	p.finish()
	checkApp(t, waitApp(t, ctx, results), c.api)
}
