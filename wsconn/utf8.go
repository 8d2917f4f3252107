package wsconn

import "unicode/utf8"

// utf8Check validates text that arrives in pieces (the reads of a streamed
// message, the writes of a Writer). A character split between pieces is
// carried over; bytes that no continuation could make valid fail at once,
// not at the end of the message, as Autobahn's strict cases (6.4.x) expect.
// The zero value is ready for a new message.
type utf8Check struct {
	part [utf8.UTFMax]byte // the start of a character cut off by the last piece
	n    int
}

// check validates b, which follows the pieces checked before. It reports
// false as soon as the text so far cannot be the start of valid UTF-8;
// the state is then undefined.
func (u *utf8Check) check(b []byte) bool {
	if u.n > 0 {
		// Complete the character the last piece cut off.
		need := seqLen(u.part[0]) - u.n
		take := min(need, len(b))
		copy(u.part[u.n:], b[:take])
		u.n += take
		b = b[take:]
		if take < need {
			return validPrefix(u.part[:u.n])
		}
		if !utf8.Valid(u.part[:u.n]) {
			return false
		}
		u.n = 0
	}
	// Find a character cut off at the end of b: a lead byte among the last
	// three whose sequence does not fit.
	tail := len(b)
	for i := len(b) - 1; i >= 0 && i >= len(b)-(utf8.UTFMax-1); i-- {
		if b[i]&0xc0 != 0x80 { // not a continuation byte
			if !utf8.FullRune(b[i:]) {
				tail = i
			}
			break
		}
	}
	if !utf8.Valid(b[:tail]) || !validPrefix(b[tail:]) {
		return false
	}
	u.n = copy(u.part[:], b[tail:])
	return true
}

// complete reports whether no character is left unfinished: checked at the
// end of a message.
func (u *utf8Check) complete() bool { return u.n == 0 }

// seqLen is the length of the sequence a lead byte starts (1 for a byte
// that cannot start one, which validPrefix then rejects).
func seqLen(lead byte) int {
	switch {
	case lead >= 0xc2 && lead <= 0xdf:
		return 2
	case lead >= 0xe0 && lead <= 0xef:
		return 3
	case lead >= 0xf0 && lead <= 0xf4:
		return 4
	}
	return 1
}

// validPrefix reports whether p, shorter than the sequence its first byte
// starts, could still become a valid character (RFC 3629 §4: no overlong
// forms, no surrogates, nothing above U+10FFFF). An empty p is valid.
func validPrefix(p []byte) bool {
	if len(p) == 0 {
		return true
	}
	if seqLen(p[0]) <= len(p) {
		return false
	}
	lo, hi := byte(0x80), byte(0xbf)
	switch p[0] {
	case 0xe0:
		lo = 0xa0
	case 0xed:
		hi = 0x9f
	case 0xf0:
		lo = 0x90
	case 0xf4:
		hi = 0x8f
	}
	for i, c := range p[1:] {
		if i > 0 {
			lo, hi = 0x80, 0xbf
		}
		if c < lo || c > hi {
			return false
		}
	}
	return true
}
