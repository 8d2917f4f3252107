package natsbroker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wsnursery/wsnursery/wsconn"
)

// A message on Prefix+".msg" is an envelope:
//
//	"WSN1"  magic and version
//	1 byte  message type: 't' text, 'b' binary
//	1 byte  length of the node id, then the node id
//	2 bytes big-endian length of the topic, then the topic
//	rest    the WebSocket message's payload
//
// Binary rather than JSON so that the payload is neither escaped nor
// copied on the way through.
const magic = "WSN1"

// maxTopicLen is the longest topic an envelope carries.
const maxTopicLen = 1<<16 - 1

type envelope struct {
	node, topic string
	m           wsconn.Message
}

func encodeMessage(node, topic string, m wsconn.Message) []byte {
	b := make([]byte, 0, len(magic)+2+len(node)+2+len(topic)+len(m.Data))
	b = append(b, magic...)
	if m.Type == wsconn.Text {
		b = append(b, 't')
	} else {
		b = append(b, 'b')
	}
	b = append(b, byte(len(node)))
	b = append(b, node...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	return append(b, m.Data...)
}

var errShort = errors.New("envelope truncated")

// decodeMessage parses an envelope; the message's Data aliases data.
func decodeMessage(data []byte) (envelope, error) {
	var e envelope
	if len(data) < len(magic)+2 || string(data[:len(magic)]) != magic {
		return e, errors.New("no wsnursery envelope")
	}
	data = data[len(magic):]
	switch data[0] {
	case 't':
		e.m.Type = wsconn.Text
	case 'b':
		e.m.Type = wsconn.Binary
	default:
		return e, fmt.Errorf("unknown message type %q", data[0])
	}
	n := int(data[1])
	data = data[2:]
	if len(data) < n+2 {
		return e, errShort
	}
	e.node, data = string(data[:n]), data[n:]
	if e.node == "" {
		return e, errors.New("envelope without a node id")
	}
	n = int(binary.BigEndian.Uint16(data))
	data = data[2:]
	if len(data) < n {
		return e, errShort
	}
	e.topic, e.m.Data = string(data[:n]), data[n:]
	return e, nil
}

// presenceKind says what a presence message carries.
type presenceKind string

const (
	kindHello  presenceKind = "hello"  // full state, from a node that (re)joined: answer with yours
	kindBeat   presenceKind = "beat"   // full state, periodic
	kindChange presenceKind = "change" // the named topics only (an empty list: nobody left there)
	kindBye    presenceKind = "bye"    // the node is leaving: forget it
)

// presenceMsg is the JSON on Prefix+".presence".
type presenceMsg struct {
	Node   string              `json:"node"`
	Kind   presenceKind        `json:"kind"`
	Topics map[string][]string `json:"topics,omitempty"`
}

func encodePresence(p presenceMsg) []byte {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // strings and maps of strings always marshal
	}
	return b
}

func decodePresence(data []byte) (presenceMsg, error) {
	var p presenceMsg
	if err := json.Unmarshal(data, &p); err != nil {
		return p, err
	}
	switch {
	case p.Node == "":
		return p, errors.New("presence without a node id")
	case p.Kind != kindHello && p.Kind != kindBeat && p.Kind != kindChange && p.Kind != kindBye:
		return p, fmt.Errorf("unknown presence kind %q", p.Kind)
	}
	return p, nil
}
