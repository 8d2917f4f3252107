package jsonmsg_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/wsnursery/wsnursery/recipes/jsonmsg"
	"github.com/wsnursery/wsnursery/wsconn"
)

type move struct {
	Player string `json:"player"`
	X, Y   int
}

func TestSendReceiveRoundTrip(t *testing.T) {
	ctx := testCtx(t)
	client, server := pair(t, ctx, nil)
	want := move{Player: "ünïcode ✓", X: 3, Y: -4}
	if err := jsonmsg.Send(ctx, client, want, nil); err != nil {
		t.Fatal(err)
	}
	got, err := jsonmsg.Receive[move](ctx, server, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// Any JSON value, not just objects; pointers and maps too.
	if err := jsonmsg.Send(ctx, server, []int{1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := client.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != wsconn.Text || string(m.Data) != "[1,2,3]" {
		t.Fatalf("wire message = %v %q, want text [1,2,3]", m.Type, m.Data)
	}
}

// Each bad message is one *DecodeError with the right cause, and the next
// message on the same connection still decodes.
func TestDecodeErrorsLeaveConnectionUsable(t *testing.T) {
	ctx := testCtx(t)
	client, server := pair(t, ctx, nil)
	strict := &jsonmsg.Options{DisallowUnknownFields: true}
	for _, tc := range []struct {
		name  string
		msg   wsconn.Message
		opts  *jsonmsg.Options
		check func(t *testing.T, err error)
	}{
		{"truncated", wsconn.Message{Type: wsconn.Text, Data: []byte(`{"player":`)}, nil, isSyntaxError(10)},
		{"wrong type", wsconn.Message{Type: wsconn.Text, Data: []byte(`{"X":"three"}`)}, nil, func(t *testing.T, err error) {
			var ue *json.UnmarshalTypeError
			if !errors.As(err, &ue) || ue.Field != "X" {
				t.Errorf("error %v does not wrap a *json.UnmarshalTypeError for field X", err)
			}
		}},
		{"unknown field", wsconn.Message{Type: wsconn.Text, Data: []byte(`{"Z":1}`)}, strict, func(t *testing.T, err error) {
			if !strings.Contains(err.Error(), `unknown field "Z"`) {
				t.Errorf("error %v does not name the unknown field", err)
			}
		}},
		{"syntax strict", wsconn.Message{Type: wsconn.Text, Data: []byte(`{"X":1,}`)}, strict, isSyntaxError(8)},
		{"trailing data", wsconn.Message{Type: wsconn.Text, Data: []byte(`{"X":1} {"X":2}`)}, nil, isSyntaxError(9)},
		{"trailing data strict", wsconn.Message{Type: wsconn.Text, Data: []byte(`{"X":1} {"X":2}`)}, strict, isSyntaxError(9)},
		{"empty", wsconn.Message{Type: wsconn.Text, Data: []byte(" \n")}, nil, isSyntaxError(2)},
		{"binary", wsconn.Message{Type: wsconn.Binary, Data: []byte(`{"X":1}`)}, nil, func(t *testing.T, err error) {
			if !errors.Is(err, jsonmsg.ErrNotText) {
				t.Errorf("error %v does not wrap ErrNotText", err)
			}
		}},
		{"too large", wsconn.Message{Type: wsconn.Text, Data: []byte(`{"player":"` + strings.Repeat("x", 100) + `"}`)}, &jsonmsg.Options{MaxSize: 100}, func(t *testing.T, err error) {
			if !errors.Is(err, jsonmsg.ErrTooLarge) {
				t.Errorf("error %v does not wrap ErrTooLarge", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := client.Send(ctx, tc.msg); err != nil {
				t.Fatal(err)
			}
			if err := jsonmsg.Send(ctx, client, move{X: 7}, nil); err != nil {
				t.Fatal(err)
			}
			got, err := jsonmsg.Receive[move](ctx, server, tc.opts)
			var de *jsonmsg.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Receive = %+v, %v; want a *DecodeError", got, err)
			}
			if got != (move{}) {
				t.Errorf("value = %+v with the error, want the zero value", got)
			}
			if de.Type != tc.msg.Type || string(de.Data) != string(tc.msg.Data) || de.Target != "jsonmsg_test.move" {
				t.Errorf("DecodeError = {%v %q %q}, want {%v %q jsonmsg_test.move}", de.Type, de.Data, de.Target, tc.msg.Type, tc.msg.Data)
			}
			if !strings.Contains(err.Error(), "jsonmsg_test.move") {
				t.Errorf("error %q does not name the target type", err)
			}
			tc.check(t, err)
			next, err := jsonmsg.Receive[move](ctx, server, tc.opts)
			if err != nil || next.X != 7 {
				t.Fatalf("next Receive = %+v, %v; want {X:7}", next, err)
			}
		})
	}
}

// isSyntaxError checks for a *json.SyntaxError at offset.
func isSyntaxError(offset int64) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var se *json.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("error %v does not wrap a *json.SyntaxError", err)
		} else if se.Offset != offset {
			t.Errorf("SyntaxError offset = %d, want %d (%v)", se.Offset, offset, err)
		}
	}
}

func TestAcceptBinary(t *testing.T) {
	ctx := testCtx(t)
	client, server := pair(t, ctx, nil)
	if err := client.SendBinary(ctx, []byte(`{"X":5}`)); err != nil {
		t.Fatal(err)
	}
	got, err := jsonmsg.Receive[move](ctx, server, &jsonmsg.Options{AcceptBinary: true})
	if err != nil || got.X != 5 {
		t.Fatalf("Receive = %+v, %v; want {X:5}", got, err)
	}
}

func TestSendRefusesOversizeAndUnencodable(t *testing.T) {
	ctx := testCtx(t)
	client, server := pair(t, ctx, nil)
	limit := &jsonmsg.Options{MaxSize: 30} // move{X: 1} is 25 bytes
	err := jsonmsg.Send(ctx, client, move{Player: strings.Repeat("y", 10)}, limit)
	if !errors.Is(err, jsonmsg.ErrTooLarge) {
		t.Fatalf("Send of oversize value = %v, want ErrTooLarge", err)
	}
	if err := jsonmsg.Send(ctx, client, make(chan int), nil); err == nil {
		t.Fatal("Send of a channel succeeded")
	} else if ue := new(json.UnsupportedTypeError); !errors.As(err, &ue) {
		t.Fatalf("Send of a channel = %v, want a *json.UnsupportedTypeError", err)
	}
	// Neither was sent: the next message the server sees is this one.
	if err := jsonmsg.Send(ctx, client, move{X: 1}, limit); err != nil {
		t.Fatal(err)
	}
	got, err := jsonmsg.Receive[move](ctx, server, limit)
	if err != nil || got.X != 1 {
		t.Fatalf("Receive = %+v, %v; want {X:1}", got, err)
	}
}

func TestReceivePassesConnectionErrorsThrough(t *testing.T) {
	ctx := testCtx(t)
	client, server := pair(t, ctx, nil)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := jsonmsg.Receive[move](cctx, server, nil)
	var de *jsonmsg.DecodeError
	if !errors.Is(err, context.Canceled) || errors.As(err, &de) {
		t.Fatalf("Receive with a cancelled ctx = %v, want context.Canceled and no *DecodeError", err)
	}

	if err := client.Close(ctx, wsconn.StatusGoingAway, "bye"); err != nil {
		t.Fatal(err)
	}
	_, err = jsonmsg.Receive[move](ctx, server, nil)
	if !errors.Is(err, wsconn.ErrConnectionClosed) || errors.As(err, &de) {
		t.Fatalf("Receive on a closed connection = %v, want ErrConnectionClosed and no *DecodeError", err)
	}
	err = jsonmsg.Send(ctx, server, move{}, nil)
	if !errors.Is(err, wsconn.ErrConnectionClosed) {
		t.Fatalf("Send on a closed connection = %v, want ErrConnectionClosed", err)
	}
}

func TestEncodeDecode(t *testing.T) {
	m, err := jsonmsg.Encode(map[string]any{"a": 1}, nil)
	if err != nil || m.Type != wsconn.Text || string(m.Data) != `{"a":1}` {
		t.Fatalf("Encode = %v %q, %v; want text {\"a\":1}", m.Type, m.Data, err)
	}
	if _, err := jsonmsg.Encode(map[string]any{"a": 1}, &jsonmsg.Options{MaxSize: 6}); !errors.Is(err, jsonmsg.ErrTooLarge) {
		t.Fatalf("Encode over MaxSize = %v, want ErrTooLarge", err)
	}
	if _, err := jsonmsg.Encode(map[string]any{"a": 1}, &jsonmsg.Options{MaxSize: 7}); err != nil {
		t.Fatalf("Encode at exactly MaxSize = %v, want nil (the limit is inclusive)", err)
	}
	v, err := jsonmsg.Decode[*move](wsconn.Message{Type: wsconn.Text, Data: []byte(` {"X":2} `)}, &jsonmsg.Options{MaxSize: 9})
	if err != nil || v == nil || v.X != 2 {
		t.Fatalf("Decode = %+v, %v; want &{X:2}", v, err)
	}
	if _, err := jsonmsg.Decode[move](wsconn.Message{Type: wsconn.Text, Data: []byte(`{"X":2}`)}, &jsonmsg.Options{MaxSize: 6}); !errors.Is(err, jsonmsg.ErrTooLarge) {
		t.Fatalf("Decode over MaxSize = %v, want ErrTooLarge", err)
	}
}
