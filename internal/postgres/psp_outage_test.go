package postgres_test

// The completion's phases against a PSP over HTTP (the Stripe gateway and a local fake
// Stripe) that is slow, then times out, then fails with 500s: 16 concurrent completions
// on a pool of 4 connections hold no connection while they wait on it, the ones in doubt
// keep their attempts, and the recovery job finishes every one with one charge each.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment/stripegw"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment/stripegw/stripefake"
)

// pspWave gathers the charges of one wave of concurrent completions at the PSP: it lets
// them through only once all have arrived, and samples the pool at that moment, when
// every completion of the wave is inside the PSP call.
type pspWave struct {
	pool *pgxpool.Pool
	size int

	mu       sync.Mutex
	arrived  int
	all      chan struct{}
	acquired int32 // connections acquired when the whole wave was at the PSP (-1: never)
}

func (w *pspWave) start(size int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.size, w.arrived, w.all, w.acquired = size, 0, make(chan struct{}), -1
}

// arrive is the fake Stripe's OnCharge hook. A wave of size 0 has no barrier.
func (w *pspWave) arrive() {
	w.mu.Lock()
	if w.size == 0 {
		w.mu.Unlock()
		return
	}
	w.arrived++
	all := w.all
	if w.arrived == w.size {
		w.acquired = w.pool.Stat().AcquiredConns()
		close(all)
	}
	w.mu.Unlock()
	select {
	case <-all:
	case <-time.After(20 * time.Second): // the wave's check below fails
	}
}

func TestCompletionsThroughASlowThenTimingOutThenFailingPSP(t *testing.T) {
	t.Parallel()
	const n = 16
	pool := smallPool(t, 4)
	wave := &pspWave{pool: pool}
	fake, err := stripefake.Start(stripefake.Options{Delay: 300 * time.Millisecond, OnCharge: wave.arrive})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	// One HTTP attempt per charge, bounded: a hanging PSP is in doubt after 5 s (long
	// enough for a whole wave to reach the PSP on a loaded machine).
	gw, err := stripegw.New(stripegw.Config{SecretKey: "sk_test_51OutageTest0123456789", APIBase: fake.URL(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := outboxEnvWith(t, pool, true, gw)
	e.exec(`UPDATE variants SET stock_quantity = 100 WHERE id = 'item_123'`)

	// completeWave completes n new sessions at once and returns their ids and errors.
	completeWave := func(name string, mode stripefake.Mode) ([]string, []error) {
		t.Helper()
		fake.SetMode(mode)
		ids := make([]string, n)
		for i := range ids {
			ids[i] = e.readySession("item_123", 1)
		}
		wave.start(n)
		before := pool.Stat()
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() {
				c := checkout.Completion{Token: fmt.Sprintf("spt_%s_%02d", name, i), Provider: "stripe"}
				_, errs[i] = e.store.CompleteSession(withKey(context.Background(), name+ids[i]), "", ids[i], c)
			})
		}
		wg.Wait()
		after := pool.Stat()
		t.Logf("%s: pool waits during the wave: %d acquires found the pool empty, %s waiting (4 connections, %d completions)",
			name, after.EmptyAcquireCount()-before.EmptyAcquireCount(), after.EmptyAcquireWaitTime()-before.EmptyAcquireWaitTime(), n)
		if wave.acquired != 0 {
			t.Errorf("%s: %d connections acquired while all %d completions were in the PSP call, want 0", name, wave.acquired, n)
		}
		return ids, errs
	}

	slow, errs := completeWave("slow", stripefake.Normal)
	for i, err := range errs {
		if err != nil {
			t.Errorf("slow PSP, completion %d: %v", i, err)
		}
	}
	hung, errs := completeWave("timeout", stripefake.Hang)
	for _, err := range errs {
		mustCode(t, err, checkout.CodePaymentPending)
	}
	failed, errs := completeWave("failing", stripefake.Fail)
	for _, err := range errs {
		mustCode(t, err, checkout.CodePaymentPending)
	}
	if got := e.count(`SELECT count(*) FROM payment_attempts WHERE status = 'pending'`); got != 2*n {
		t.Errorf("pending attempts after the outage = %d, want %d", got, 2*n)
	}
	if got := e.count(`SELECT stock_quantity FROM variants WHERE id = 'item_123'`); got != 100-3*n {
		t.Errorf("stock during the outage = %d, want %d (the attempts in doubt keep theirs)", got, 100-3*n)
	}
	if got := len(fake.PaymentIntentsByKey()); got != 2*n {
		t.Errorf("payment intents during the outage = %d, want %d (the slow wave's and the hung wave's)", got, 2*n)
	}

	// The PSP is back; the attempts are stale: the recovery job asks again under each
	// attempt's key and writes every order once.
	wave.start(0) // no barrier: the job asks one attempt at a time
	fake.SetMode(stripefake.Normal)
	e.staleAttempts()
	recovered := 0
	for range 10 {
		res, err := e.store.RecoverPayments(context.Background(), 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) == 0 {
			break
		}
		for _, r := range res {
			if r.Err != nil {
				t.Errorf("recovery of %s: %v", r.OrderID, r.Err)
			}
		}
		recovered += len(res)
	}
	if recovered != 2*n {
		t.Errorf("recovered %d attempts, want %d", recovered, 2*n)
	}
	byKey := fake.PaymentIntentsByKey()
	for _, ids := range [][]string{slow, hung, failed} {
		for _, id := range ids {
			if got := e.count(`SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); got != 1 {
				t.Errorf("session %s: %d orders, want 1", id, got)
			}
			if e.gateway.ChargesFor(id) != 1 || byKey[id] == "" {
				t.Errorf("session %s: charged %d times, payment intent %q; want one", id, e.gateway.ChargesFor(id), byKey[id])
			}
		}
	}
	if got := len(byKey); got != 3*n {
		t.Errorf("payment intents = %d, want %d: one per session", got, 3*n)
	}
	if got := e.count(`SELECT stock_quantity FROM variants WHERE id = 'item_123'`); got != 100-3*n {
		t.Errorf("stock = %d, want %d", got, 100-3*n)
	}
}
