package streams

import "context"

// Gate holds a source's publish back: Wait returns at once while publishing may go on, or
// blocks until it may (or ctx is done). The memory budget (memlimit) and the stream's
// when_full policy (modules/retention) are gates.
type Gate interface {
	Wait(ctx context.Context) error
}

// Gates is one gate that waits for each of gs in turn.
type Gates []Gate

// Wait waits for every gate.
func (gs Gates) Wait(ctx context.Context) error {
	for _, g := range gs {
		if err := g.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}
