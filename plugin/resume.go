package plugin

import (
	"context"
	"fmt"
)

// ResumeReleased retries the resume of an HTLC that was released but not
// resumed, e.g. because its incoming channel was inactive. It is a no-op
// for an HTLC in any other state.
func (e *Engine) ResumeReleased(ctx context.Context,
	key CircuitKey) error {

	e.mu.Lock()
	ent, ok := e.active[key]
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %v", ErrUnknownHTLC, key)
	}
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if ent.removed || ent.rec.State != StateReleased {
		return nil
	}
	e.resumeReleased(ctx, ent)
	return nil
}

// IncomingChecker is implemented by a Resolver that can tell whether an
// HTLC's incoming channel forwards; see ErrIncomingInactive.
type IncomingChecker interface {
	// IncomingInactive reports true only when the channel is known to
	// be inactive; when it cannot tell it reports false.
	IncomingInactive(ctx context.Context, key CircuitKey) bool
}

// incomingUsable reports whether a resume of key may go out now: not when
// the resolver knows its incoming channel is inactive.
func (e *Engine) incomingUsable(ctx context.Context,
	key CircuitKey) bool {

	c, ok := e.cfg.Resolver.(IncomingChecker)
	return !ok || !c.IncomingInactive(ctx, key)
}
