package delivery

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// settled records how a message was settled.
type settled struct {
	how   []string
	dlErr error // DeadLetter fails with it
}

func (s *settled) Ack() error { s.how = append(s.how, "ack"); return nil }
func (s *settled) Nak(d time.Duration) error {
	s.how = append(s.how, fmt.Sprintf("nak %v", d))
	return nil
}
func (s *settled) InProgress() error { return nil }
func (s *settled) DeadLetter(_ context.Context, cause error) error {
	if s.dlErr != nil {
		return s.dlErr
	}
	s.how = append(s.how, "dead: "+cause.Error())
	return nil
}

// rawMsg is a file chunk of lines stored at seq, as a monitor publishes it.
func rawMsg(t *testing.T, seq uint64, lines ...string) (*Msg, *settled) {
	t.Helper()
	data := []byte(strings.Join(lines, "\n") + "\n")
	c := &streams.Chunk{Kind: streams.KindFile, Host: "h", Source: "/a.log", Data: data, Lines: len(lines), ReadTime: time.Unix(1, 0),
		File: &streams.FilePos{Dev: 1, Ino: 2, Fingerprint: "ab", End: int64(len(data))}}
	nm := c.Msg()
	st := &settled{}
	return &Msg{Stream: "LOGS", Subject: nm.Subject, Header: nm.Header, Data: nm.Data, Seq: seq, Delivered: 1, Settle: st}, st
}

// script is a sink whose Writes fail as told, in turn; past the end they succeed.
type script struct {
	fail   []error
	writes []string
}

func (s *script) Write(_ context.Context, b []sinks.Record) error {
	var ids []string
	for _, r := range b {
		ids = append(ids, r.ID())
	}
	s.writes = append(s.writes, strings.Join(ids, " "))
	if n := len(s.writes) - 1; n < len(s.fail) {
		return s.fail[n]
	}
	return nil
}
func (s *script) Check(context.Context) error { return nil }
func (s *script) Close() error                { return nil }

type counts struct {
	NopObserver
	retries []time.Duration
	dead    int
}

func (c *counts) Retrying(_ int, wait time.Duration, _ error) { c.retries = append(c.retries, wait) }
func (c *counts) DeadLettered()                               { c.dead++ }

func TestDeliver(t *testing.T) {
	transient := errors.New("503")
	for _, tc := range []struct {
		name     string
		fail     []error
		failFast bool
		wantErr  string
		writes   string // the Writes, separated by |
		settle   string // how each message was settled, separated by |
		retries  int
	}{
		{name: "ok", writes: "LOGS-1-0 LOGS-2-0 LOGS-2-1", settle: "ack|ack"},
		{name: "transient then ok", fail: []error{transient}, writes: "LOGS-1-0 LOGS-2-0 LOGS-2-1|LOGS-1-0 LOGS-2-0 LOGS-2-1", settle: "ack|ack", retries: 1},
		{name: "partial: only the failed records again", fail: []error{&sinks.PartialError{Failed: map[int]error{2: transient}}},
			writes: "LOGS-1-0 LOGS-2-0 LOGS-2-1|LOGS-2-1", settle: "ack|ack", retries: 1},
		{name: "permanent record: its message dead, the other acked", fail: []error{&sinks.PartialError{Failed: map[int]error{1: sinks.Permanent(errors.New("400"))}}},
			writes: "LOGS-1-0 LOGS-2-0 LOGS-2-1", settle: "ack|dead: permanent: 400"},
		{name: "gives up after MaxDeliver", fail: []error{transient, transient, transient},
			writes: "LOGS-1-0 LOGS-2-0 LOGS-2-1|LOGS-1-0 LOGS-2-0 LOGS-2-1|LOGS-1-0 LOGS-2-0 LOGS-2-1",
			settle: "dead: sink s: gave up after 3 attempts: 503|dead: sink s: gave up after 3 attempts: 503", retries: 2},
		{name: "fail fast: permanent ends it", failFast: true, fail: []error{sinks.Permanent(errors.New("400"))},
			wantErr: "sink s: record LOGS-1-0: permanent: 400", writes: "LOGS-1-0 LOGS-2-0 LOGS-2-1", settle: "|"},
		{name: "fail fast: gives up", failFast: true, fail: []error{transient, transient, transient},
			wantErr: "sink s: gave up after 3 attempts: 503", retries: 2,
			writes: "LOGS-1-0 LOGS-2-0 LOGS-2-1|LOGS-1-0 LOGS-2-0 LOGS-2-1|LOGS-1-0 LOGS-2-0 LOGS-2-1", settle: "|"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m1, s1 := rawMsg(t, 1, "a")
			m2, s2 := rawMsg(t, 2, "b", "c")
			obs := &counts{}
			st := &Stage{Name: "s", Obs: obs, MaxDeliver: 3, Retry: retry.Policy{Initial: time.Millisecond, Max: time.Millisecond}, FailFast: tc.failFast}
			sink := &script{fail: tc.fail}
			ctx := context.Background()
			err := st.Deliver(ctx, ctx, sink, st.NewBatch(ctx, []*Msg{m1, m2}))
			if got := fmt.Sprint(err); (tc.wantErr == "" && err != nil) || (tc.wantErr != "" && got != tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if got := strings.Join(sink.writes, "|"); got != tc.writes {
				t.Errorf("writes %q, want %q", got, tc.writes)
			}
			if got := strings.Join(s1.how, ",") + "|" + strings.Join(s2.how, ","); got != tc.settle {
				t.Errorf("settled %q, want %q", got, tc.settle)
			}
			if len(obs.retries) != tc.retries {
				t.Errorf("retries %v, want %d", obs.retries, tc.retries)
			}
		})
	}
}

// A destination's Retry-After wins over the stage's back-off, for the pipeline and a replay.
func TestDeliverRetryAfter(t *testing.T) {
	for _, failFast := range []bool{false, true} {
		t.Run(fmt.Sprintf("failFast=%v", failFast), func(t *testing.T) {
			m, s := rawMsg(t, 1, "a")
			obs := &counts{}
			st := &Stage{Name: "s", Obs: obs, MaxDeliver: 3, Retry: retry.Policy{Initial: time.Hour, Max: time.Hour}, FailFast: failFast}
			sink := &script{fail: []error{&sinks.RetryAfterError{After: 20 * time.Millisecond, Err: errors.New("429")}}}
			ctx := context.Background()
			began := time.Now()
			if err := st.Deliver(ctx, ctx, sink, st.NewBatch(ctx, []*Msg{m})); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(began); len(obs.retries) != 1 || obs.retries[0] != 20*time.Millisecond || took > 10*time.Second {
				t.Fatalf("retries %v in %v: Retry-After not honoured", obs.retries, took)
			}
			if strings.Join(s.how, ",") != "ack" {
				t.Errorf("settled %v", s.how)
			}
		})
	}
}

// A stop while the destination is down hands the batch back; a write the grace period cut
// is handed back and reported.
func TestDeliverStop(t *testing.T) {
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	m, s := rawMsg(t, 1, "a")
	st := &Stage{Name: "s", Type: "http", MaxDeliver: 3, Retry: retry.Policy{Initial: time.Hour, Max: time.Hour}, Grace: time.Second}
	if err := st.Deliver(stopped, context.Background(), &script{fail: []error{errors.New("503")}}, st.NewBatch(context.Background(), []*Msg{m})); err != nil {
		t.Fatalf("stop during an outage: %v", err)
	}
	if strings.Join(s.how, ",") != "nak 0s" {
		t.Fatalf("settled %v", s.how)
	}
	m, s = rawMsg(t, 2, "b")
	err := st.Deliver(stopped, stopped, &script{fail: []error{context.Canceled}}, st.NewBatch(context.Background(), []*Msg{m}))
	if err == nil || !strings.Contains(err.Error(), "http sink s: stop: write unanswered after the 1s grace period") || errors.Is(err, context.Canceled) {
		t.Fatalf("cut write: %v", err)
	}
	if strings.Join(s.how, ",") != "nak 0s" {
		t.Fatalf("settled %v", s.how)
	}
}

func TestSettle(t *testing.T) {
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	bad := errors.New("publish timeout")
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		failed    error
		settled   bool
		delivered uint64
		dlErr     error
		want      string
	}{
		{"output durable", context.Background(), nil, false, 1, nil, "ack"},
		{"dead-lettered already", context.Background(), nil, true, 1, nil, ""},
		{"failed: redelivered later", context.Background(), bad, false, 1, nil, "nak 2s"},
		{"failed during a stop: handed back now", stopped, bad, false, 1, nil, "nak 0s"},
		{"failed the last time: dead letter", context.Background(), bad, false, 5, nil, "dead: processor p: publish output (delivery 5 of 5): publish timeout"},
		{"dead letter fails: redelivered", context.Background(), bad, false, 5, errors.New("no stream"), "nak 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, s := rawMsg(t, 1, "a")
			m.Delivered, s.dlErr = tc.delivered, tc.dlErr
			st := &Stage{Name: "p", Prefix: "processor p", MaxDeliver: 5, Redeliver: 2 * time.Second}
			st.Settle(tc.ctx, []*Msg{m}, []error{tc.failed}, []bool{tc.settled}, "publish output")
			if got := strings.Join(s.how, ","); got != tc.want {
				t.Errorf("settled %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConsume(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m1, s1 := rawMsg(t, 1, "a")
	m2, s2 := rawMsg(t, 2, "b")
	m1.Pending = 7
	fetches := 0
	var pend []uint64
	st := &Stage{Name: "s", Obs: pendingObs{&pend}}
	var handled []uint64
	err := st.Consume(ctx, func(context.Context) ([]*Msg, error) {
		fetches++
		switch fetches {
		case 1:
			return nil, errors.New("consumer not found") // retried
		case 2:
			return []*Msg{m1}, nil
		default:
			cancel() // a stop while a batch was fetched: handed back
			return []*Msg{m2}, nil
		}
	}, func(_ context.Context, msgs []*Msg) error {
		for _, m := range msgs {
			handled = append(handled, m.Seq)
		}
		return nil
	})
	if err != nil || fetches != 3 || fmt.Sprint(handled) != "[1]" || fmt.Sprint(pend) != "[7]" {
		t.Fatalf("err %v, fetches %d, handled %v, pending %v", err, fetches, handled, pend)
	}
	if len(s1.how) != 0 || strings.Join(s2.how, ",") != "nak 0s" {
		t.Fatalf("settled %v %v", s1.how, s2.how)
	}
}

type pendingObs struct{ p *[]uint64 }

func (o pendingObs) Fetched(n uint64)                 { *o.p = append(*o.p, n) }
func (pendingObs) Wrote(int, int, time.Duration)      {}
func (pendingObs) Retrying(int, time.Duration, error) {}
func (pendingObs) Healthy(bool)                       {}
func (pendingObs) DeadLettered()                      {}

// A stage whose sink reads no fields decodes derived chunks without them, and nothing else
// of the records changes.
func TestNewBatchNoFields(t *testing.T) {
	entries := []event.Entry{
		{Time: time.Unix(5, 0).UTC(), Host: "h", Kind: "file", Source: "/a.log", Message: `{"a":1}`, Fields: map[string]any{"a": int64(1), "b": []any{"x"}}},
		{Time: time.Unix(6, 0).UTC(), Host: "h", Kind: "file", Source: "/a.log", Message: "plain", Continued: true},
	}
	nm, err := streams.DerivedMsg("parsed.file.h.a", "LOGS:7", entries)
	if err != nil {
		t.Fatal(err)
	}
	for _, noFields := range []bool{false, true} {
		st := &Stage{Name: "s", NoFields: noFields}
		m := &Msg{Stream: "PARSED", Subject: nm.Subject, Header: nm.Header, Data: nm.Data, Seq: 3, Delivered: 1, Settle: &settled{}}
		b := st.NewBatch(context.Background(), []*Msg{m})
		if b.Len() != len(entries) {
			t.Fatalf("noFields=%v: %d records, want %d", noFields, b.Len(), len(entries))
		}
		for i, r := range b.recs {
			want := entries[i]
			if noFields {
				want.Fields = nil
			}
			if !reflect.DeepEqual(r.Entry, want) {
				t.Errorf("noFields=%v: record %d\n got %#v\nwant %#v", noFields, i, r.Entry, want)
			}
		}
	}
}
