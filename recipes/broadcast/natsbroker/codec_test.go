package natsbroker

import (
	"bytes"
	"testing"

	"github.com/wsnursery/wsnursery/wsconn"
)

// FuzzDecodeMessage: any bytes on the subject decode to an envelope or an
// error, never a panic, and what encodeMessage makes decodes to itself.
func FuzzDecodeMessage(f *testing.F) {
	f.Add("node-1", "room", byte('t'), []byte("hello"))
	f.Add("n", "", byte('b'), []byte{0, 1, 2})
	f.Add("", "x", byte('t'), []byte(nil))
	f.Fuzz(func(t *testing.T, node, topic string, kind byte, data []byte) {
		decodeMessage(data) // arbitrary input: must not panic
		if node == "" || len(node) > 255 || len(topic) > maxTopicLen {
			return
		}
		typ := wsconn.Text
		if kind&1 == 1 {
			typ = wsconn.Binary
		}
		e, err := decodeMessage(encodeMessage(node, topic, wsconn.Message{Type: typ, Data: data}))
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if e.node != node || e.topic != topic || e.m.Type != typ || !bytes.Equal(e.m.Data, data) {
			t.Fatalf("round trip = %q %q %v %q, want %q %q %v %q", e.node, e.topic, e.m.Type, e.m.Data, node, topic, typ, data)
		}
	})
}
