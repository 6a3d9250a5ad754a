package replay

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/streams"
)

// RebuildOptions tune Rebuild's wait.
type RebuildOptions struct {
	// Poll is how often the processor's consumer is read while the stream is derived again
	// (default 250ms).
	Poll time.Duration
	// Idle is how long the consumer may have no waiting pull (no processor running) before
	// OnIdle is called, once (default 10s).
	Idle   time.Duration
	OnIdle func(consumer, stream string)
}

// Rebuild empties the derived stream of processor name and resets the processor's durable
// consumer to the start of its input (Reset), then waits until the processor,
// running in `logcap run` on this node or another, has derived everything again: until its
// consumer has nothing pending and nothing unacknowledged. Progress counts input messages.
func Rebuild(ctx context.Context, js jetstream.JetStream, cfg *config.Config, name string, o RebuildOptions, prog Progress) (st Stats, err error) {
	began := time.Now()
	var pc *config.Processor
	for i := range cfg.Processors {
		if cfg.Processors[i].Name == name {
			pc = &cfg.Processors[i]
		}
	}
	if pc == nil {
		return st, fmt.Errorf("rebuild: the config has no processor named %q", name)
	}
	spec, err := streams.DerivedSpec(cfg, *pc)
	if err != nil {
		return st, fmt.Errorf("rebuild %s: %w", name, err)
	}
	st.Stream, st.Input = spec.Name, "?"
	defer func() {
		st.Took = time.Since(began)
		if prog != nil {
			prog.Done(st)
		}
	}()
	if err := Reset(ctx, js, cfg, name); err != nil {
		return st, err
	}
	in, err := js.StreamNameBySubject(ctx, pc.Input)
	if err != nil {
		return st, fmt.Errorf("rebuild %s: input %s: %w", name, pc.Input, err)
	}
	st.Input = in
	poll, idle := cmpD(o.Poll, 250*time.Millisecond), cmpD(o.Idle, 10*time.Second)
	var total int64 = -1
	lastPull := time.Now()
	warned := false
	for {
		ci, err := js.Consumer(ctx, in, name)
		if err != nil {
			return st, fmt.Errorf("rebuild %s: consumer %s on %s: %w", name, name, in, err)
		}
		info, err := ci.Info(ctx)
		if err != nil {
			return st, fmt.Errorf("rebuild %s: consumer %s on %s: %w", name, name, in, err)
		}
		left := int64(info.NumPending) + int64(info.NumAckPending)
		if total < 0 {
			// What the input holds for the processor's filter: exact, however far the
			// processor got before this first look.
			if total, err = matching(ctx, js, in, pc.Input); err != nil {
				return st, fmt.Errorf("rebuild %s: %w", name, err)
			}
		}
		st.Messages = max(total-left, 0)
		if s, err := js.Stream(ctx, spec.Name); err == nil {
			st.Derived, st.Bytes = int64(s.CachedInfo().State.Msgs), int64(s.CachedInfo().State.Bytes)
		}
		if prog != nil {
			prog.Update(st, total)
		}
		if left == 0 {
			return st, nil
		}
		if info.NumWaiting > 0 || info.NumAckPending > 0 {
			lastPull = time.Now()
		} else if !warned && time.Since(lastPull) > idle && o.OnIdle != nil {
			warned = true
			o.OnIdle(name, in)
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			st.Interrupted = true
			return st, fmt.Errorf("rebuild %s: stopped waiting (the processor goes on deriving): %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// matching counts the messages of stream on subjects matching filter.
func matching(ctx context.Context, js jetstream.JetStream, stream, filter string) (int64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, fmt.Errorf("stream %s: subjects %s: %w", stream, filter, err)
	}
	var n int64
	for _, c := range info.State.Subjects {
		n += int64(c)
	}
	return n, nil
}
