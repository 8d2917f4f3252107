package interop

import "github.com/wsnursery/wsnursery/wsconn"

// Sizes are the message sizes the echo tests use: the edges of the 7-bit,
// 16-bit and 64-bit frame length encodings, and 1 MiB, the default
// MaxMessageSize (which is inclusive).
var Sizes = []int{0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20}

// textRunes are cycled through by Payload for text: 1- to 4-byte UTF-8.
var textRunes = []rune{'w', 's', 'é', '✓', '𝄞', 'n', 'ü', '→', ' '}

// Payload returns exactly n bytes of deterministic data for message number
// seq. For Text it is valid UTF-8 that mixes 1- to 4-byte characters; for
// Binary it runs through every byte value.
func Payload(typ wsconn.MessageType, n, seq int) []byte {
	b := make([]byte, 0, n)
	if typ == wsconn.Binary {
		for i := range n {
			b = append(b, byte(i*7+seq))
		}
		return b
	}
	for i := seq; len(b) < n; i++ {
		r := textRunes[i%len(textRunes)]
		if len(b)+len(string(r)) > n {
			r = 'a' + rune(len(b)%26)
		}
		b = append(b, string(r)...)
	}
	return b
}
