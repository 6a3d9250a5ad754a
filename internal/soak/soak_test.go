package soak

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 75
process_open_fds 2.5e+01
process_resident_memory_bytes 7.3e+07
logcap_pipeline_consumer_pending{consumer="archive"} 3
logcap_pipeline_consumer_pending{consumer="we}ird \"quoted\""} 4 1700000000000
logcap_pipeline_consumer_pending_other 100
logcap_pipeline_consumer_pending{consumer="x"} NaN
broken{consumer="x" 9
`
	for _, tc := range []struct {
		name string
		want float64
		ok   bool
	}{
		{"go_goroutines", 75, true},
		{"process_open_fds", 25, true},
		{"process_resident_memory_bytes", 73e6, true},
		{"logcap_pipeline_consumer_pending", 7, true}, // summed over consumers; NaN skipped
		{"broken", 0, false},
		{"absent", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ParseMetrics([]byte(text), tc.name)
			got, ok := m[tc.name]
			if ok != tc.ok || got != tc.want {
				t.Errorf("got %v (present %v), want %v (present %v)", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add([]byte("go_goroutines 75\nx{a=\"}\"} 1\n"))
	f.Add([]byte("a{b=\"\\\"\"} 2 3\n# c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range ParseMetrics(b, "go_goroutines", "x", "a") {
			if math.IsNaN(v) {
				t.Fatal("NaN summed")
			}
		}
	})
}

func TestSlope(t *testing.T) {
	for _, tc := range []struct {
		name   string
		xs, ys []float64
		want   float64
	}{
		{"flat", []float64{0, 1, 2, 3}, []float64{5, 5, 5, 5}, 0},
		{"line", []float64{0, 1, 2, 3}, []float64{1, 3, 5, 7}, 2},
		{"noise around a line", []float64{0, 1, 2, 3, 4}, []float64{0, 2, 1, 3, 2}, 0.5},
		{"one point", []float64{1}, []float64{1}, 0},
		{"same x", []float64{2, 2}, []float64{1, 5}, 0},
		{"mismatched", []float64{1, 2}, []float64{1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Slope(tc.xs, tc.ys); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("slope %v, want %v", got, tc.want)
			}
		})
	}
}

const profStart = `goroutine profile: total 5
3 @ 0x43e1ee 0x4089e5 0x408545 0x8f6b2c 0x473ee1
#	0x8f6b2b	github.com/nats-io/nats-server/v2/server.(*consumer).loopAndGatherMsgs+0x12b	/x/consumer.go:4567

2 @ 0x43e1ee 0x44f1c5
#	0x44f1c4	internal/poll.runtime_pollWait+0x84	/go/src/runtime/netpoll.go:351
#	0x4c2f0e	internal/poll.(*pollDesc).wait+0x2e	/go/src/internal/poll/fd_poll_runtime.go:84

`

const profEnd = `goroutine profile: total 9
5 @ 0x43e1ee 0x4089e5 0x408545 0x8f6b2c 0x473ee1
#	0x8f6b2b	github.com/nats-io/nats-server/v2/server.(*consumer).loopAndGatherMsgs+0x12b	/x/consumer.go:4567

2 @ 0x43e1ee 0x44f1c5
#	0x44f1c4	internal/poll.runtime_pollWait+0x84	/go/src/runtime/netpoll.go:351

1 @ 0x43e1ee 0x44f1c5
#	0x44f1c4	internal/poll.runtime_pollWait+0x84	/go/src/runtime/netpoll.go:351

1 @ 0x43e1ee
`

func TestGoroutineDiff(t *testing.T) {
	s, e := GoroutineGroups([]byte(profStart)), GoroutineGroups([]byte(profEnd))
	if s["internal/poll.runtime_pollWait"] != 2 || e["internal/poll.runtime_pollWait"] != 3 || e["unknown"] != 1 {
		t.Fatalf("groups: start %v end %v", s, e)
	}
	d := DiffGroups(s, e)
	want := []GroupDiff{
		{"github.com/nats-io/nats-server/v2/server.(*consumer).loopAndGatherMsgs", 3, 5, 2},
		{"internal/poll.runtime_pollWait", 2, 3, 1},
		{"unknown", 0, 1, 1},
	}
	if len(d) != len(want) {
		t.Fatalf("diff %+v, want %+v", d, want)
	}
	for i := range want {
		if d[i] != want[i] {
			t.Errorf("diff[%d] = %+v, want %+v", i, d[i], want[i])
		}
	}
	if out := FormatDiff(d); !strings.Contains(out, "+2  github.com/nats-io") {
		t.Errorf("table:\n%s", out)
	}
}

func FuzzGoroutineGroups(f *testing.F) {
	f.Add([]byte(profStart))
	f.Add([]byte(profEnd))
	f.Add([]byte("x @ \n#\t\t\n1 @ 0x1\n#\tonly-two"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for fn, n := range GoroutineGroups(b) {
			if n <= 0 || fn == "" {
				t.Fatalf("group %q has %d goroutines", fn, n)
			}
		}
	})
}

func series(n int, every time.Duration, f func(i int) Sample) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = f(i)
		out[i].At = time.Duration(i) * every
	}
	return out
}

func TestJudge(t *testing.T) {
	flat := func(i int) Sample {
		return Sample{Goroutines: 75 + float64(i%3) - 1, FDs: 25 + float64(i%2), RSS: float64(70+(i*7)%9) * (1 << 20)}
	}
	for _, tc := range []struct {
		name    string
		samples []Sample
		fails   []string // substrings, one per expected failure
	}{
		{"flat with noise passes", series(120, 5*time.Second, flat), nil},
		{"a goroutine leak of 1/min", series(120, 5*time.Second, func(i int) Sample {
			s := flat(i)
			s.Goroutines += float64(i) / 12
			return s
		}), []string{"goroutines grow"}},
		{"an fd leak of one per 2 minutes", series(120, 5*time.Second, func(i int) Sample {
			s := flat(i)
			s.FDs += float64(i) / 24
			return s
		}), []string{"open fds grow"}},
		{"an fd jump", series(120, 5*time.Second, func(i int) Sample {
			s := flat(i)
			if i > 110 {
				s.FDs += 8
			}
			return s
		}), []string{"open fds grow", "open fds went from"}},
		{"RSS up 20%", series(120, 5*time.Second, func(i int) Sample {
			s := flat(i)
			s.RSS *= 1 + 0.2*float64(i)/119
			return s
		}), []string{"RSS grew"}},
		{"too few samples", series(3, 5*time.Second, flat), []string{"only"}},
		{"RSS up 20% in a short run is reported, not judged", series(30, 5*time.Second, func(i int) Sample {
			s := flat(i)
			s.RSS *= 1 + 0.2*float64(i)/29
			return s
		}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(tc.samples, 2*time.Minute, DefaultLimits)
			if len(v.Failures) != len(tc.fails) {
				t.Fatalf("failures %q, want %d matching %q\n%s", v.Failures, len(tc.fails), tc.fails, v.Table())
			}
			for i, f := range tc.fails {
				if !strings.Contains(v.Failures[i], f) {
					t.Errorf("failure %q, want %q", v.Failures[i], f)
				}
			}
		})
	}
}

// A 90-second run: the count moves by ±1 as containers come and go, and the least-squares
// slope over a minute of such noise exceeds 0.2/min by chance; that is not a leak. A leak of
// one goroutine per container start (60/min) over the same window is.
func TestJudgeShortRunNoise(t *testing.T) {
	noise := []float64{73, 75, 73, 74, 73, 75, 74, 75, 73, 75, 75, 74, 75, 75}
	mk := func(leakPerMin float64) []Sample {
		return series(len(noise), 5*time.Second, func(i int) Sample {
			at := time.Duration(i) * 5 * time.Second
			return Sample{Goroutines: noise[i] + leakPerMin*at.Minutes(), FDs: 25, RSS: 70 << 20}
		})
	}
	v := Judge(mk(0), 0, DefaultLimits)
	if v.Rows[0].Slope <= DefaultLimits.GoroutineSlope {
		t.Fatalf("the noise must exceed the limit by chance for this test to mean anything: slope %.3f", v.Rows[0].Slope)
	}
	if len(v.Failures) != 0 {
		t.Errorf("noise failed the soak: %q\n%s", v.Failures, v.Table())
	}
	t.Logf("noise alone:\n%s", v.Table())
	v = Judge(mk(60), 0, DefaultLimits)
	if len(v.Failures) != 1 || !strings.Contains(v.Failures[0], "goroutines grow") {
		t.Errorf("a leak of 60/min passed: %q\n%s", v.Failures, v.Table())
	}
}

func TestCountWithFrame(t *testing.T) {
	profile := []byte(`goroutine profile: total 7
3 @ 0x1 0x2
#	0x1	internal/poll.runtime_pollWait+0x84	/go/src/runtime/netpoll.go:351
#	0x2	net/http.(*persistConn).readLoop+0xc04	/go/src/net/http/transport.go:2398

2 @ 0x3
#	0x3	net/http.(*persistConn).writeLoop+0x1d	/go/src/net/http/transport.go:2600

2 @ 0x4
#	0x4	net/http.(*persistConn).readLoopX+0x1	/x.go:1
`)
	for _, tc := range []struct {
		fn   string
		want int
	}{
		{"net/http.(*persistConn).readLoop", 3},
		{"net/http.(*persistConn).writeLoop", 2},
		{"internal/poll.runtime_pollWait", 3},
		{"main.nothing", 0},
	} {
		if got := CountWithFrame(profile, tc.fn); got != tc.want {
			t.Errorf("CountWithFrame(%s) = %d, want %d", tc.fn, got, tc.want)
		}
	}
}
