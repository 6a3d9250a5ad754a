package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name     string
		p        Policy
		attempt  int
		lo, hi   time.Duration // bounds of every draw
		reachTop bool          // 2000 draws reach the upper half of [lo, hi]
	}{
		{"none first", Policy{100 * ms, 5 * time.Second, None}, 0, 100 * ms, 100 * ms, false},
		{"none doubles", Policy{100 * ms, 5 * time.Second, None}, 3, 800 * ms, 800 * ms, false},
		{"none capped", Policy{100 * ms, 5 * time.Second, None}, 7, 5 * time.Second, 5 * time.Second, false},
		{"full first", Policy{100 * ms, 10 * time.Second, Full}, 0, 0, 100 * ms, true},
		{"full 5", Policy{100 * ms, 10 * time.Second, Full}, 5, 0, 3200 * ms, true},
		{"full capped", Policy{100 * ms, 10 * time.Second, Full}, 7, 0, 10 * time.Second, true},
		{"full overflow", Policy{time.Second, time.Minute, Full}, 63, 0, time.Minute, true},
		{"full huge attempt", Policy{time.Second, time.Minute, Full}, 1 << 30, 0, time.Minute, true},
		{"negative attempt", Policy{time.Second, time.Minute, Full}, -3, 0, time.Second, true},
		{"initial above max", Policy{time.Minute, time.Second, Full}, 3, 0, time.Second, true},
		{"zero initial", Policy{0, time.Second, Full}, 3, 0, 0, false},
		{"equal", Policy{100 * ms, 5 * time.Second, Equal}, 2, 200 * ms, 400 * ms, true},
		{"equal capped", Policy{100 * ms, 5 * time.Second, Equal}, 9, 2500 * ms, 5 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var top time.Duration
			for range 2000 {
				d := tc.p.Delay(tc.attempt)
				if d < tc.lo || d > tc.hi {
					t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tc.attempt, d, tc.lo, tc.hi)
				}
				top = max(top, d)
			}
			if tc.reachTop && top < tc.lo+(tc.hi-tc.lo)/2 {
				t.Errorf("largest of 2000 draws %v: jitter does not spread to %v", top, tc.hi)
			}
		})
	}
}

func TestBackoffResets(t *testing.T) {
	b := Policy{Initial: time.Millisecond, Max: time.Second}.New()
	for want := range 3 {
		if got := b.Next(); got != time.Millisecond<<want {
			t.Fatalf("delay %d: %v", want, got)
		}
	}
	b.Reset()
	if got := b.Next(); got != time.Millisecond || b.Attempts() != 1 {
		t.Fatalf("after Reset: %v, attempts %d", got, b.Attempts())
	}
}

func TestUntil(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		failures  int
		wantErr   error
		wantCalls int
	}{
		{"succeeds at once", context.Background(), 0, nil, 1},
		{"succeeds after failures", context.Background(), 3, nil, 4},
		{"cancelled", cancelled, 1 << 30, context.Canceled, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, told := 0, 0
			err := Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond}.Until(tc.ctx, time.Second, func(ctx context.Context) error {
				calls++
				if _, ok := ctx.Deadline(); !ok {
					t.Error("attempt without its timeout")
				}
				if calls <= tc.failures {
					return errors.New("not yet")
				}
				return nil
			}, func(int, error) { told++ })
			if !errors.Is(err, tc.wantErr) || calls != tc.wantCalls {
				t.Fatalf("err %v, calls %d; want %v, %d", err, calls, tc.wantErr, tc.wantCalls)
			}
			if tc.wantErr == nil && told != tc.failures {
				t.Errorf("onErr told %d times, want %d", told, tc.failures)
			}
		})
	}
}

func TestSleepStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep(cancelled, 1h) = true")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep(1ms) = false")
	}
}
