package wsconn

import "testing"

func newTestConn() *Conn {
	return &Conn{closing: make(chan struct{}), dropQueue: make(chan struct{}), done: make(chan struct{})}
}

// Every path through the close states: what each event records, which
// channels it closes, and that a later event never overwrites a final
// reason.
func TestTransition(t *testing.T) {
	local := CloseReason{Code: 4001, Reason: "local"}
	failed := CloseReason{Code: StatusProtocolError, Reason: "bad"}
	peer := CloseReason{Code: 4003, Reason: "peer"}
	type step struct {
		ev     closeEvent
		reason CloseReason
		from   connState // the state transition reports
	}
	for _, tc := range []struct {
		name    string
		steps   []step
		state   connState
		reason  CloseReason
		discard bool
	}{
		{"local close answered", []step{{evClose, local, stateOpen}, {evPeerClose, peer, stateClosing}}, statePeerClosed, peer, true},
		{"peer closes first", []step{{evPeerClose, peer, stateOpen}, {evClose, local, statePeerClosed}}, statePeerClosed, peer, true},
		{"failure answered", []step{{evFail, failed, stateOpen}, {evPeerClose, peer, stateClosing}}, statePeerClosed, peer, false},
		{"failure then local close", []step{{evFail, failed, stateOpen}, {evClose, local, stateClosing}}, stateClosing, failed, true},
		{"second local close", []step{{evClose, local, stateOpen}, {evClose, failed, stateClosing}}, stateClosing, local, true},
		{"finish after closing", []step{{evFail, failed, stateOpen}, {evFinish, CloseReason{}, stateClosing}}, stateClosed, failed, false},
		{"finish after peer close", []step{{evPeerClose, peer, stateOpen}, {evFinish, CloseReason{}, statePeerClosed}, {evClose, local, stateClosed}, {evPeerClose, local, stateClosed}}, stateClosed, peer, true},
		{"finish while open", []step{{evFinish, CloseReason{}, stateOpen}}, stateClosed, CloseReason{Code: StatusAbnormalClosure}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestConn()
			for i, s := range tc.steps {
				if from := c.transition(s.ev, s.reason); from != s.from {
					t.Fatalf("step %d: transition from %v, want from %v", i, from, s.from)
				}
				if !isClosed(c.closing) {
					t.Fatalf("step %d: closing not closed in %v", i, c.state)
				}
			}
			if c.state != tc.state || c.reason != tc.reason || c.discard != tc.discard {
				t.Fatalf("ended %v %v discard=%v, want %v %v discard=%v", c.state, c.reason, c.discard, tc.state, tc.reason, tc.discard)
			}
			if isClosed(c.dropQueue) != tc.discard {
				t.Fatalf("dropQueue closed = %v, want %v", isClosed(c.dropQueue), tc.discard)
			}
			if isClosed(c.done) != (tc.state == stateClosed) {
				t.Fatalf("done closed = %v in state %v", isClosed(c.done), c.state)
			}
		})
	}
}

func TestConnStateString(t *testing.T) {
	for s, want := range map[connState]string{stateOpen: "open", stateClosing: "closing", statePeerClosed: "peer closed", stateClosed: "closed", 9: "connState(9)"} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", s, got, want)
		}
	}
}
