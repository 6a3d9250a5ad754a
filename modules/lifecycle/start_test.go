package lifecycle

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"
)

// TestStartHook: whether start fails part-way or the app stops, the group's goroutines end
// before the resources close, and the resources close in reverse order.
func TestStartHook(t *testing.T) {
	cases := []struct {
		name     string
		startErr error
	}{
		{"start fails after the first goroutine", errors.New("second source: bad host")},
		{"start succeeds, app stops", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var events []string
			lc := fxtest.NewLifecycle(t)
			g := New("test", zap.NewNop())
			StartHook(lc, g, func(_ context.Context, c *Closers) error {
				c.Add(func() error { events = append(events, "close client 1"); return nil })
				if err := g.Go("reader 1", func(ctx context.Context) error {
					<-ctx.Done()
					events = append(events, "reader 1 stopped") // before Stop returns: no race with the closers
					return nil
				}); err != nil {
					return err
				}
				c.Add(func() error { events = append(events, "close client 2"); return nil })
				return tc.startErr
			})
			err := lc.Start(context.Background())
			if !errors.Is(err, tc.startErr) || (tc.startErr == nil) != (err == nil) {
				t.Fatalf("start: %v, want %v", err, tc.startErr)
			}
			if tc.startErr == nil {
				if err := lc.Stop(context.Background()); err != nil {
					t.Fatalf("stop: %v", err)
				}
			}
			want := []string{"reader 1 stopped", "close client 2", "close client 1"}
			if !reflect.DeepEqual(events, want) {
				t.Fatalf("events %v, want %v", events, want)
			}
			if err := g.Go("late", func(context.Context) error { return nil }); !errors.Is(err, ErrStopped) {
				t.Fatalf("group not stopped: %v", err)
			}
		})
	}
}
