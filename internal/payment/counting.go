package payment

import (
	"context"
	"sync"
)

// CountingGateway wraps a Gateway and counts the charges that went through, in total and
// per checkout session. Tests use it to prove that a session is charged at most once:
// MockGateway alone keeps nothing, so a double charge would leave no trace.
type CountingGateway struct {
	// Gateway answers the charges; MockGateway when nil.
	Gateway Gateway

	mu        sync.Mutex
	attempts  int
	bySession map[string]int
}

// Name implements Gateway: the wrapped gateway's name.
func (g *CountingGateway) Name() string { return g.inner().Name() }

// Refund implements Gateway: it forwards r uncounted.
func (g *CountingGateway) Refund(ctx context.Context, r Refund) (RefundReceipt, error) {
	return g.inner().Refund(ctx, r)
}

func (g *CountingGateway) inner() Gateway {
	if g.Gateway == nil {
		return MockGateway{}
	}
	return g.Gateway
}

// Charge implements Gateway: it forwards c and counts it when it succeeds.
func (g *CountingGateway) Charge(ctx context.Context, c Charge) (Receipt, error) {
	inner := g.inner()
	g.mu.Lock()
	g.attempts++
	g.mu.Unlock()
	r, err := inner.Charge(ctx, c)
	if err != nil {
		return r, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bySession == nil {
		g.bySession = map[string]int{}
	}
	g.bySession[c.SessionID]++
	return r, nil
}

// Attempts returns how many charges were asked for, successful or not.
func (g *CountingGateway) Attempts() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.attempts
}

// Charges returns how many charges succeeded, over all sessions.
func (g *CountingGateway) Charges() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.bySession {
		n += c
	}
	return n
}

// ChargesFor returns how many charges for sessionID succeeded.
func (g *CountingGateway) ChargesFor(sessionID string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bySession[sessionID]
}
