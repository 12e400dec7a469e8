package payment

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrLostAnswer, from a ScriptedGateway's Decide, charges (or refunds) and then loses
// the answer: the call returns an error wrapping ErrUnavailable, as a timeout after the
// PSP acted.
var ErrLostAnswer = errors.New("the PSP acted, then the connection broke")

// ScriptedGateway is a PSP a test scripts, for the outcomes MockGateway cannot give: an
// answer lost after the charge, an outage, a slow PSP. Like a real PSP it keeps the
// first successful outcome of each idempotency key and answers the key again with it,
// never charging (or refunding) twice; Charged and Refunded count those outcomes.
type ScriptedGateway struct {
	// Decide answers the n-th charge call (from 1): nil charges (or replays the key's
	// charge), ErrLostAnswer charges and reports ErrUnavailable, any other error refuses
	// without charging. nil Decide: every call charges.
	Decide func(n int, c Charge) error
	// DecideRefund is Decide for refunds.
	DecideRefund func(n int, r Refund) error
	// InCharge runs inside every charge call, before it answers (a slow PSP, a probe of
	// what the caller holds meanwhile).
	InCharge func(c Charge)

	mu          sync.Mutex
	calls       int
	refundCalls int
	charged     map[string]Receipt
	refunded    map[string]RefundReceipt
}

// Name implements Gateway.
func (g *ScriptedGateway) Name() string { return "scripted" }

// Charge implements Gateway.
func (g *ScriptedGateway) Charge(_ context.Context, c Charge) (Receipt, error) {
	if g.InCharge != nil {
		g.InCharge(c)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	var verdict error
	if g.Decide != nil {
		verdict = g.Decide(g.calls, c)
	}
	return act(&g.charged, c.IdempotencyKey, "ch_", verdict, func(ref string) Receipt { return Receipt{Reference: ref} })
}

// Refund implements Gateway.
func (g *ScriptedGateway) Refund(_ context.Context, r Refund) (RefundReceipt, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refundCalls++
	var verdict error
	if g.DecideRefund != nil {
		verdict = g.DecideRefund(g.refundCalls, r)
	}
	return act(&g.refunded, r.IdempotencyKey, "re_", verdict, func(ref string) RefundReceipt { return RefundReceipt{Reference: ref} })
}

// act answers a call with idempotency key and the script's verdict: a refusal as is;
// otherwise the key's first outcome in done (made now, with a reference of prefix,
// when the key is new), lost behind ErrUnavailable when the verdict is ErrLostAnswer.
func act[R any](done *map[string]R, key, prefix string, verdict error, receipt func(ref string) R) (R, error) {
	var zero R
	if verdict != nil && !errors.Is(verdict, ErrLostAnswer) {
		return zero, verdict
	}
	if *done == nil {
		*done = map[string]R{}
	}
	r, ok := (*done)[key]
	if !ok {
		r = receipt(mockReference(prefix, key))
		(*done)[key] = r
	}
	if verdict != nil {
		return zero, fmt.Errorf("%w: %w", ErrUnavailable, verdict)
	}
	return r, nil
}

// LoseAnswers is a Decide that charges every call and loses the answer of the first n.
func LoseAnswers(n int) func(int, Charge) error {
	return func(call int, _ Charge) error {
		if call <= n {
			return ErrLostAnswer
		}
		return nil
	}
}

// Charged is how many payments the gateway took: one per idempotency key.
func (g *ScriptedGateway) Charged() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.charged)
}

// Refunded is how many refunds the gateway made: one per idempotency key.
func (g *ScriptedGateway) Refunded() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.refunded)
}
