package retention

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    State
		hold bool
		why  string
	}{
		{"not full", State{MaxBytes: 100, Bytes: 80, Msgs: 100, FirstSeq: 1, LastSeq: 100, AckFloors: map[string]uint64{"sink": 0}}, false, ""},
		{"full, oldest unacked", State{MaxBytes: 100, Bytes: 95, Msgs: 100, FirstSeq: 1, LastSeq: 100, AckFloors: map[string]uint64{"sink": 0, "proc": 100}}, true, "consumer sink has not acked sequence 1"},
		{"full, consumers near the head", State{MaxBytes: 100, Bytes: 95, Msgs: 100, FirstSeq: 1, LastSeq: 100, AckFloors: map[string]uint64{"sink": 50}}, false, ""},
		{"full, all acked", State{MaxBytes: 100, Bytes: 99, Msgs: 100, FirstSeq: 1, LastSeq: 100, AckFloors: map[string]uint64{"sink": 100}}, false, ""},
		{"full, no durable consumer", State{MaxBytes: 100, Bytes: 99, Msgs: 100, FirstSeq: 1, LastSeq: 100, AckFloors: map[string]uint64{}}, false, ""},
		{"max_msgs full, floor below first", State{MaxMsgs: 100, Msgs: 95, FirstSeq: 501, LastSeq: 595, AckFloors: map[string]uint64{"sink": 3}}, true, "has not acked sequence 501"},
		{"empty", State{MaxBytes: 100, Bytes: 0, Msgs: 0, AckFloors: map[string]uint64{"sink": 0}}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hold, why := Decide(tc.s)
			if hold != tc.hold || !strings.Contains(why, tc.why) {
				t.Errorf("Decide = %v %q, want %v %q", hold, why, tc.hold, tc.why)
			}
		})
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
