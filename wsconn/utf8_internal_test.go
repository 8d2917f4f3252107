package wsconn

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// canContinue is the reference for utf8Check: whether some bytes appended
// to b make it valid UTF-8. It tries every completion of up to 3 bytes
// drawn from the ends of the ranges RFC 3629 allows after a lead byte,
// which reach every range.
func canContinue(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	ends := []byte{0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf}
	var try func(s []byte, left int) bool
	try = func(s []byte, left int) bool {
		if utf8.Valid(s) {
			return true
		}
		if left == 0 {
			return false
		}
		for _, c := range ends {
			if try(append(s[:len(s):len(s)], c), left-1) {
				return true
			}
		}
		return false
	}
	return try(b, 3)
}

// FuzzUTF8Check cuts text into random pieces: utf8Check must accept each
// piece exactly while the text so far can still become valid, and accept
// the whole exactly when it is valid.
func FuzzUTF8Check(f *testing.F) {
	for _, s := range []string{"", "hello", "κόσμε", "a𝄞b", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\xaf",
		"\xc0\x80", "ab\xf0\x9f\x98", "\xf0\x9f\x98\x80\xf0", "€\xe2\x82", "\x80", "\xff"} {
		f.Add([]byte(s), uint64(1))
	}
	f.Fuzz(func(t *testing.T, b []byte, seed uint64) {
		r := rand.New(rand.NewPCG(seed, seed>>1))
		var u utf8Check
		ok := true
		for end := 0; end < len(b) && ok; {
			next := min(len(b), end+1+r.IntN(4))
			ok = u.check(b[end:next])
			end = next
			if want := canContinue(b[:end]); ok != want {
				t.Fatalf("%q cut at %d: check = %t, want %t", b, end, ok, want)
			}
		}
		if ok {
			ok = u.complete()
		}
		if ok != utf8.Valid(b) {
			t.Fatalf("%q: accepted = %t, utf8.Valid = %t", b, ok, utf8.Valid(b))
		}
	})
}
