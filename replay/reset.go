package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/streams"
)

// dedupSettle is how long the server takes to forget message ids once the duplicate window
// is shrunk to its minimum (100 ms): its purge timer fires at once and drops ids older than
// the window.
const dedupSettle = 300 * time.Millisecond

// Reset empties a processor's derived stream and resets its durable consumer to the start
// of its input, so the processor (running on this node or any other) derives the stream
// again from what its input still holds: the event-sourcing contract (`logcap replay
// --rebuild`). The output's msg ids are the input's stream sequences, and a purge keeps the
// server's duplicate window, so the window is briefly shrunk to let the server forget them;
// it is restored before the consumer is recreated.
func Reset(ctx context.Context, js jetstream.JetStream, cfg *config.Config, processorName string) error {
	var pc *config.Processor
	for i := range cfg.Processors {
		if cfg.Processors[i].Name == processorName {
			pc = &cfg.Processors[i]
		}
	}
	if pc == nil {
		return fmt.Errorf("rebuild: no processor named %q", processorName)
	}
	spec, err := streams.DerivedSpec(cfg, *pc)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", processorName, err)
	}
	in, err := js.StreamNameBySubject(ctx, pc.Input)
	if err != nil {
		return fmt.Errorf("rebuild %s: input %s: find its stream: %w", processorName, pc.Input, err)
	}
	// First stop deliveries: a processor still running gets "consumer not found" and
	// retries until the consumer is back.
	if err := js.DeleteConsumer(ctx, in, pc.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("rebuild %s: delete consumer: %w", processorName, err)
	}
	s, err := streams.Provision(ctx, js, spec)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", processorName, err)
	}
	sc := s.CachedInfo().Config
	window := sc.Duplicates
	// Twice: an update resets the server's dedup timer to fire at once, but it may fire before
	// the new window is stored (nats-server 2.15 stream.go sets ddwin after the reset) and then
	// keep the ids for the old window. The second update's timer runs with a small window in
	// place either way.
	for _, d := range []time.Duration{100 * time.Millisecond, 150 * time.Millisecond} {
		sc.Duplicates = d
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("rebuild %s: shrink duplicate window of %s: %w", processorName, spec.Name, err)
		}
	}
	restore := func() error {
		sc.Duplicates = window
		if _, err := js.UpdateStream(context.WithoutCancel(ctx), sc); err != nil {
			return fmt.Errorf("rebuild %s: restore duplicate window of %s: %w", processorName, spec.Name, err)
		}
		return nil
	}
	if !retry.Sleep(ctx, dedupSettle) {
		return errors.Join(ctx.Err(), restore())
	}
	if err := s.Purge(ctx); err != nil {
		return errors.Join(fmt.Errorf("rebuild %s: purge %s: %w", processorName, spec.Name, err), restore())
	}
	if err := restore(); err != nil {
		return err
	}
	if _, err := streams.EnsureConsumer(ctx, js, streams.ProcessorConsumer(*pc, in)); err != nil {
		return fmt.Errorf("rebuild %s: %w", processorName, err)
	}
	return nil
}
