package postgres_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// cacheEnv is the package's test kit with a SessionCache: its store and vault keep
// views and tokens, as one instance serving every request of a session does; other is
// a store without one on the same database, another instance behind a balancer.
type cacheEnv struct {
	*outboxEnv
	trips *pgtest.RoundTrips
	cache *postgres.SessionCache
	vault *postgres.Vault
	other *postgres.Store
}

// newCacheEnv is a cacheEnv whose stores offer the marketing consents consents (none:
// nil).
func newCacheEnv(t *testing.T, consents ...checkout.ConsentOption) *cacheEnv {
	t.Helper()
	trips := &pgtest.RoundTrips{}
	e := outboxEnvOn(t, pgtest.MustPoolTraced(t, trips), false)
	cache := postgres.NewSessionCache(100)
	cfg := postgres.StoreConfig{TTL: time.Hour, Gateway: e.gateway, PublicBaseURL: "https://shop.example", ConsentOptions: consents}
	other := postgres.NewStore(e.pool, cfg)
	cfg.SessionCache = cache
	e.store = postgres.NewStore(e.pool, cfg)
	return &cacheEnv{
		outboxEnv: e, trips: trips, other: other, cache: cache,
		vault: postgres.NewVault(e.pool, payment.NewFingerprinter([]byte("cache-test-fingerprint-key-0123456789"))).WithSessionCache(cache),
	}
}

// measure runs op and returns the round trips it took, and what they sent.
func (e *cacheEnv) measure(op func() error) (int, []string) {
	e.t.Helper()
	var err error
	n, sent := e.trips.Measure(func() { err = op() })
	if err != nil {
		e.t.Fatal(err)
	}
	return n, sent
}

// summary is what a response shows of a session and its quote, but the times of its
// delivery windows (which the response and a read give at different precisions).
func summary(v checkout.View) string {
	s := v.Session
	q := v.Quote
	var opts []string
	for _, o := range q.Options {
		opts = append(opts, fmt.Sprintf("%s:%d", o.ID, o.Amount))
	}
	return fmt.Sprintf("state=%s lines=%+v option=%s auth=%+v codes=%q\nstatus=%s totals=%+v\nlines=%+v\nmessages=%+v\ndiscounts=%+v\noptions=%v\nconsents=%+v",
		s.State, s.Lines, s.FulfillmentOptionID, s.Authentication, s.DiscountCodes,
		q.Status, q.Totals, q.Lines, q.Messages, discountsShown(q.Discounts), opts, v.ConsentOptions)
}

// discountsShown is what a response shows of a quote's discounts: the definitions with
// their pointers followed, and not the redemption counts, which pricing reads only to
// tell whether a limit is reached (the write's and a read's may differ by other
// sessions' redemptions short of it).
func discountsShown(dq checkout.DiscountQuote) string {
	applied := make([]string, len(dq.Applied))
	for i, a := range dq.Applied {
		d := a.Discount
		pointed := fmt.Sprintf("starts=%s ends=%s usage_limit=%s per_buyer_limit=%s",
			pointee(d.StartsAt), pointee(d.EndsAt), pointee(d.UsageLimit), pointee(d.PerBuyerLimit))
		d.StartsAt, d.EndsAt, d.UsageLimit, d.PerBuyerLimit, d.Redeemed, d.BuyerRedeemed = nil, nil, nil, nil, 0, 0
		applied[i] = fmt.Sprintf("{%+v %s code=%s amount=%d allocations=%+v priority=%d}", d, pointed, a.Code, a.Amount, a.Allocations, a.Priority)
	}
	return fmt.Sprintf("{active=%v codes=%q applied=%v rejected=%+v}", dq.Active, dq.Codes, applied, dq.Rejected)
}

// pointee is the value p points to, printed, or "<nil>".
func pointee[T any](p *T) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprint(*p)
}

// mustAnswerAsRead fails unless view, the answer of a write of session id, shows what
// a read of the session by another instance shows right after.
func (e *cacheEnv) mustAnswerAsRead(view checkout.View, id string) {
	e.t.Helper()
	read, err := e.other.GetSession(context.Background(), "", id)
	if err != nil {
		e.t.Fatal(err)
	}
	if got, want := summary(view), summary(read); got != want {
		e.t.Errorf("the write answered\n%s\nand a read shows\n%s", got, want)
	}
}

// A session written through one instance with a SessionCache takes, for its next
// update and its completion, one round trip each: the kept view and the kept token
// stand for the read. Each answer is the one a read gives. So it is when the merchant
// offers marketing consents, and the completion stores the buyer's decisions.
func TestKeptViewsMakeUpdatesAndCompletionsOneRoundTrip(t *testing.T) {
	t.Parallel()
	for name, consents := range map[string][]checkout.ConsentOption{"without consents": nil, "with consents": testConsentOptions} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			keptViewsMakeWritesOneRoundTrip(t, newCacheEnv(t, consents...))
		})
	}
}

// keptViewsMakeWritesOneRoundTrip is TestKeptViewsMakeUpdatesAndCompletionsOneRoundTrip
// on e.
func keptViewsMakeWritesOneRoundTrip(t *testing.T, e *cacheEnv) {
	ctx := context.Background()
	id := e.readySession()
	var view checkout.View
	n, sent := e.measure(func() (err error) {
		view, err = e.store.UpdateSession(ctx, "", id, checkout.Changes{Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 2}}})
		return err
	})
	if n != 1 {
		t.Errorf("an update from a kept view took %d round trips, want 1: %q", n, sent)
	}
	e.mustAnswerAsRead(view, id)
	tok := delegateVisa(t, e.vault, id, time.Now().Add(time.Hour))
	decisions := []checkout.MarketingConsent{{Channel: checkout.ChannelEmail, OptedIn: true}}
	n, sent = e.measure(func() (err error) {
		view, err = e.store.CompleteSession(ctx, "", id, checkout.Completion{Token: tok.ID, Provider: "stripe", Consents: decisions})
		return err
	})
	if n != 1 {
		t.Errorf("a completion from a kept view and token took %d round trips, want 1: %q", n, sent)
	}
	if view.Order == nil || view.Order.Amount != view.Quote.Totals.Total || view.Quote.Totals.Total == 0 {
		t.Fatalf("completion: order %+v, total %d", view.Order, view.Quote.Totals.Total)
	}
	if got := e.count(`SELECT count(*) FROM orders WHERE checkout_session_id = $1 AND amount = $2`, id, view.Order.Amount); got != 1 {
		t.Errorf("%d orders of the amount answered, want 1", got)
	}
	stored, want := e.count(`SELECT count(*) FROM marketing_consents WHERE checkout_session_id = $1 AND opted_in`, id), 0
	if len(view.ConsentOptions) > 0 {
		want = 1
	}
	if stored != want {
		t.Errorf("%d decisions stored with the order, want %d", stored, want)
	}
	// Without the cache, the same writes read first: the baseline the count is against.
	id = e.readySession()
	n, _ = e.measure(func() (err error) {
		_, err = e.other.UpdateSession(ctx, "", id, checkout.Changes{Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 2}}})
		return err
	})
	if n != 2 {
		t.Errorf("an update without a cache took %d round trips, want 2", n)
	}
}

// A kept view stands for a read only while nothing it shows changed. Whatever changed
// behind the instance's back (the catalog, the stock, another instance's write, a card
// asking for 3-D Secure), the next write answers as a read would, and the write after
// it is one round trip again.
func TestKeptViewsAnswerWhatChangedBehindThem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// change changes something behind the cached store's back.
		change func(e *cacheEnv, id string)
		// stale says the change makes the kept view out of date: the write checks it
		// and runs again from a read (more than one round trip).
		stale bool
		// consents says the stores offer marketing consents (testConsentOptions).
		consents bool
	}{
		{"the title of a line's variant", func(e *cacheEnv, _ string) {
			e.exec(`UPDATE variants SET title = 'Tee, organic' WHERE id = 'item_123'`)
		}, true, false},
		{"a line's variant unavailable", func(e *cacheEnv, _ string) {
			e.exec(`UPDATE variants SET available = false WHERE id = 'item_123'`)
		}, true, false},
		{"a shipping option's price", func(e *cacheEnv, _ string) {
			e.exec(`UPDATE fulfillment_options SET amount = amount + 100`)
		}, true, false},
		{"a tax rate", func(e *cacheEnv, _ string) {
			e.exec(`UPDATE tax_rates SET rate_bps = rate_bps + 100`)
		}, true, false},
		{"an automatic discount", func(e *cacheEnv, _ string) {
			e.exec(`INSERT INTO discounts (id, title, percent_bps) VALUES ('auto10', 'Ten off', 1000)`)
		}, true, false},
		{"the stock, short of the line", func(e *cacheEnv, _ string) {
			e.setStock("item_123", 1)
		}, true, false},
		{"the stock, from unlimited to plenty", func(e *cacheEnv, _ string) {
			e.setStock("item_123", 50)
		}, false, false},
		{"another instance's update", func(e *cacheEnv, id string) {
			notes := "Leave it at the door."
			if _, err := e.other.UpdateSession(context.Background(), "", id, checkout.Changes{OrderNotes: &notes}); err != nil {
				e.t.Fatal(err)
			}
		}, true, false},
		{"a card delegated on another instance asking for 3-D Secure", func(e *cacheEnv, id string) {
			v := postgres.NewVault(e.pool, payment.NewFingerprinter([]byte("cache-test-fingerprint-key-0123456789")))
			delegate3DS(e.t, v, id)
		}, true, false},
		{"another contact's marketing decision", func(e *cacheEnv, _ string) {
			e.decide(checkout.ChannelEmail, "grace@example.com", true)
		}, false, true},
		{"the buyer's first marketing decision", func(e *cacheEnv, _ string) {
			e.decide(checkout.ChannelEmail, "ada@example.com", true)
		}, true, true},
		{"the buyer's marketing decision changed", func(e *cacheEnv, id string) {
			e.decide(checkout.ChannelEmail, "ada@example.com", false)
			// The instance keeps a view that shows the decision, then it changes.
			notes := "Leave it at the door."
			if _, err := e.store.UpdateSession(context.Background(), "", id, checkout.Changes{OrderNotes: &notes}); err != nil {
				e.t.Fatal(err)
			}
			e.decide(checkout.ChannelEmail, "ada@example.com", true)
		}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var consents []checkout.ConsentOption
			if tc.consents {
				consents = testConsentOptions
			}
			e := newCacheEnv(t, consents...)
			ctx := context.Background()
			id := e.readySession()
			tc.change(e, id)
			var view checkout.View
			n, sent := e.measure(func() (err error) {
				view, err = e.store.UpdateSession(ctx, "", id, checkout.Changes{Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 2}}})
				return err
			})
			// Out of date, the kept view costs the write its round trip: the read under
			// the lock and the writes follow it.
			want := 1
			if tc.stale {
				want = 3
			}
			if n != want {
				t.Errorf("the update took %d round trips, want %d (stale: %v): %q", n, want, tc.stale, sent)
			}
			e.mustAnswerAsRead(view, id)
			if view.Session.Authentication != nil {
				return // a view that asks for 3-D Secure is not kept
			}
			n, sent = e.measure(func() (err error) {
				view, err = e.store.UpdateSession(ctx, "", id, checkout.Changes{Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 1}}})
				return err
			})
			if n != 1 {
				t.Errorf("the update after took %d round trips, want 1: %q", n, sent)
			}
			e.mustAnswerAsRead(view, id)
		})
	}
}

// An update that sets the buyer, or the fulfillment contact, of a merchant who offers
// marketing consents shows the new contacts' stored decisions, read along with the
// session's view: two round trips, as without consents, where the catalog was read
// again for them before. With a cache or without, the answer is the one a read gives.
func TestUpdateReadsTheDecisionsOfTheContactsItBrings(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, testConsentOptions...)
	ctx := context.Background()
	e.decide(checkout.ChannelEmail, "ada@example.com", true)
	e.decide(checkout.ChannelSMS, "+15551234567", true)
	address := &checkout.Address{Name: "Ada", LineOne: "1 Road", City: "San Francisco", State: "CA", Country: "US", PostalCode: "94131"}
	for _, tc := range []struct {
		name  string
		store *postgres.Store
		ch    checkout.Changes
		// subscribed are the channels the answer shows subscribed.
		subscribed []string
		// changedBetween changes the session between the update's read and its lock,
		// so that it runs again under the lock: 4 round trips, and the change's own.
		changedBetween bool
	}{
		{"the buyer, without a cache", e.other, checkout.Changes{Buyer: &checkout.Buyer{FirstName: "Ada", Email: "Ada@Example.com"}},
			[]string{checkout.ChannelEmail}, false},
		{"the buyer, from an instance that kept the view", e.store, checkout.Changes{Buyer: &checkout.Buyer{FirstName: "Ada", Email: "ada@example.com"}},
			[]string{checkout.ChannelEmail}, false},
		{"the buyer and the contact's phone", e.other, checkout.Changes{
			Buyer:              &checkout.Buyer{FirstName: "Ada", Email: "ada@example.com"},
			FulfillmentContact: &checkout.FulfillmentContact{PhoneNumber: "+15551234567"},
		}, []string{checkout.ChannelEmail, checkout.ChannelSMS}, false},
		{"another buyer", e.other, checkout.Changes{Buyer: &checkout.Buyer{FirstName: "Grace", Email: "grace@example.com"}}, nil, false},
		{"the buyer, the session changed between the read and the lock", e.other, checkout.Changes{Buyer: &checkout.Buyer{FirstName: "Ada", Email: "ada@example.com"}},
			[]string{checkout.ChannelEmail}, true},
		{"the buyer, from a kept view, the session changed between the read and the lock", e.store, checkout.Changes{Buyer: &checkout.Buyer{FirstName: "Ada", Email: "ada@example.com"}},
			[]string{checkout.ChannelEmail}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			created, err := e.store.CreateSession(ctx, "", checkout.Changes{
				Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 1}}, FulfillmentAddress: address,
			})
			if err != nil {
				t.Fatal(err)
			}
			id := created.Session.ID
			ctx, want := ctx, 2
			if tc.changedBetween {
				changed := false
				ctx, _ = e.withDeferredKey(ctx, id, func() {
					if !changed {
						changed = true
						e.exec(`UPDATE checkout_sessions SET order_notes = 'Leave it at the door.' WHERE id = $1`, id)
					}
				})
				want = 5
			}
			var view checkout.View
			n, sent := e.measure(func() (err error) {
				view, err = tc.store.UpdateSession(ctx, "", id, tc.ch)
				return err
			})
			if n != want {
				t.Errorf("the update took %d round trips, want %d: %q", n, want, sent)
			}
			// From a view it kept, the instance reads the new contacts' decisions, not the
			// view (unless it runs again under the lock).
			if tc.store == e.store && !tc.changedBetween && slices.ContainsFunc(sent, func(s string) bool { return strings.Contains(s, "GetSessionView") }) {
				t.Errorf("the update from a kept view read the view again: %q", sent)
			}
			var subscribed []string
			for _, o := range view.ConsentOptions {
				if o.Subscribed {
					subscribed = append(subscribed, o.Channel)
				}
			}
			if !slices.Equal(subscribed, tc.subscribed) {
				t.Errorf("the answer shows %v subscribed, want %v", subscribed, tc.subscribed)
			}
			e.mustAnswerAsRead(view, id)
		})
	}
}

// Behind a balancer without affinity, two instances each find their kept views out of
// date at almost every write. Each cache notices, and stops starting from them but for
// one in sixteen, so a write costs about what it costs without a cache. Once a
// session's writes stay on one instance, its views are used again.
func TestKeptViewsStandAsideBehindABalancerWithoutAffinity(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t)
	ctx := context.Background()
	cacheB := postgres.NewSessionCache(100)
	b := postgres.NewStore(e.pool, postgres.StoreConfig{
		TTL: time.Hour, Gateway: e.gateway, PublicBaseURL: "https://shop.example", SessionCache: cacheB,
	})
	const sessions = 20
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = e.readySession()
	}
	quantity := map[string]int{}
	update := func(s *postgres.Store, id string) int {
		t.Helper()
		quantity[id] = 3 - max(quantity[id], 1) // 2, 1, 2, …: each update changes the line
		n, _ := e.measure(func() error {
			_, err := s.UpdateSession(ctx, "", id, checkout.Changes{Items: []checkout.ItemRequest{{ID: "item_123", Quantity: quantity[id]}}})
			return err
		})
		return n
	}
	// Round robin: the session's k-th update goes to instance k%2, so each instance
	// finds the view it kept two writes ago, after the other's write.
	instances := []*postgres.Store{e.store, b}
	const rounds = 8
	late := 0 // the round trips of the second half
	for k := range rounds {
		for _, id := range ids {
			if n := update(instances[k%2], id); k >= rounds/2 {
				late += n
			}
		}
	}
	// Each instance looks up 2 × 20 views in the second half and uses at most 3 (one
	// in 16), each out of date: 3 round trips instead of 2.
	lateUpdates := rounds / 2 * sessions
	if most := 2*lateUpdates + 6; late > most {
		t.Errorf("the second half's %d updates took %d round trips, want at most %d (2 each, 3 for each view tried)", lateUpdates, late, most)
	}
	for name, c := range map[string]*postgres.SessionCache{"a": e.cache, "b": cacheB} {
		if st := c.Stats(); st.Passed == 0 || st.OutOfDate > 20 {
			t.Errorf("instance %s: %+v, want views passed over and at most 20 out of date", name, st)
		}
	}
	// Affinity: every write of a session on one instance. Its views are current again;
	// the one in sixteen it tries shows so, and the cache comes back.
	before := e.cache.Stats()
	for range 10 {
		for _, id := range ids {
			update(e.store, id)
		}
	}
	for _, id := range ids {
		if n := update(e.store, id); n != 1 {
			t.Errorf("with affinity, an update took %d round trips after 200, want 1 (%+v)", n, e.cache.Stats())
		}
	}
	if after := e.cache.Stats(); after.Current <= before.Current {
		t.Errorf("no view was found current with affinity: %+v, then %+v", before, after)
	}
}

// A completion from a kept view whose stock ran short meanwhile is refused as one from
// a read is: out of stock, with the count left, and nothing taken or charged.
func TestKeptViewCompletionRefusesAStockSoldMeanwhile(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t)
	ctx := context.Background()
	e.setStock("item_123", 5)
	id := e.readySession("item_123", 2)
	tok := delegateVisa(t, e.vault, id, time.Now().Add(time.Hour))
	e.setStock("item_123", 1)
	_, err := e.store.CompleteSession(ctx, "", id, checkout.Completion{Token: tok.ID, Provider: "stripe"})
	read, rerr := e.other.GetSession(ctx, "", id)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if read.Quote.Status == checkout.StatusReadyForPayment || err == nil {
		t.Fatalf("completion: %v; the session reads %s", err, read.Quote.Status)
	}
	e.mustRefuseAsRead(err, id, checkout.Completion{Token: tok.ID, Provider: "stripe"})
	if got := e.count(`SELECT stock_quantity FROM variants WHERE id = 'item_123'`); got != 1 {
		t.Errorf("stock %d, want 1 (nothing taken)", got)
	}
	if got := e.count(`SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); got != 0 {
		t.Errorf("%d orders, want none", got)
	}
}

// The catalog's generation counts the changes a view shows: a completion's stock does
// not move it, a title does. Every column of variants is either counted or named as
// one no response shows.
func TestCatalogGenerationCoversTheVariants(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t)
	generation := func() int {
		return e.count(`SELECT generation::int FROM catalog_generation`)
	}
	before := generation()
	e.setStock("item_123", 10)
	e.exec(`SELECT take_stock(ARRAY['item_123'], ARRAY[1])`)
	e.exec(`SELECT put_back_stock(ARRAY['item_123'], ARRAY[1])`)
	if got := generation(); got != before {
		t.Errorf("the stock moved the generation from %d to %d", before, got)
	}
	e.exec(`UPDATE variants SET price_amount = price_amount + 1 WHERE id = 'item_123'`)
	if got := generation(); got != before+1 {
		t.Errorf("a price change left the generation at %d, want %d", got, before+1)
	}
	columns := e.texts(`SELECT column_name::text FROM information_schema.columns WHERE table_name = 'variants' ORDER BY column_name`)
	counted := e.texts(`SELECT a.attname::text FROM pg_trigger t
		JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = ANY(t.tgattr::int2[])
		WHERE t.tgname = 'variants_catalog_generation' ORDER BY a.attname`)
	for _, c := range columns {
		if !slices.Contains(counted, c) && !slices.Contains(postgres.VariantColumnsOutsideGeneration, c) {
			t.Errorf("column variants.%s is neither counted by the catalog's generation (migration 00034) nor named in variantColumnsOutsideGeneration", c)
		}
	}
}

// mustRefuseAsRead fails unless err, the refusal of completion c of session id by the
// store that keeps views, is the refusal another instance, which reads, gives the same
// completion right after.
func (e *cacheEnv) mustRefuseAsRead(err error, id string, c checkout.Completion) {
	e.t.Helper()
	if _, again := e.other.CompleteSession(context.Background(), "", id, c); err == nil || again == nil || again.Error() != err.Error() {
		e.t.Errorf("the kept view's completion was refused with %v, a read's with %v", err, again)
	}
}

// decide stores contact's decision on channel, as another session's completion with
// that buyer would: against an order of its own (e.mustOrder).
func (e *cacheEnv) decide(channel, contact string, optedIn bool) {
	e.t.Helper()
	order := e.mustOrder()
	e.exec(`INSERT INTO marketing_consents (channel, contact, opted_in, checkout_session_id, order_id, updated_at)
		SELECT $1, $2, $3, checkout_session_id, id, now() FROM orders WHERE id = $4
		ON CONFLICT (channel, contact) DO UPDATE SET opted_in = EXCLUDED.opted_in, order_id = EXCLUDED.order_id`,
		channel, contact, optedIn, order.ID)
}

// setStock sets the stock of variant id.
func (e *outboxEnv) setStock(id string, n int32) {
	e.t.Helper()
	if err := postgres.SetStock(context.Background(), e.pool, id, &n); err != nil {
		e.t.Fatal(err)
	}
}

// delegate3DS stores in v a vault token for session id of a card whose issuer asks for
// 3-D Secure.
func delegate3DS(t *testing.T, v *postgres.Vault, id string) payment.Token {
	t.Helper()
	token := delegateCard(t, v, id, "4000000000003220", time.Now().Add(time.Hour))
	if !strings.HasPrefix(token.ID, "vt_") || token.AuthenticationDirectoryServer == "" {
		t.Fatalf("token %s asks for no 3-D Secure", token.ID)
	}
	return token
}

// BenchmarkKeptViewMemory reports the heap a kept view takes: that of a ready session
// of one line (buyer, address, an option chosen) in the package's test catalog, kept
// b.N times. go test -run '^$' -bench KeptViewMemory -benchtime 10000x ./internal/postgres/
func BenchmarkKeptViewMemory(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.MustPool(b)
	if _, err := postgres.ImportCatalog(ctx, pool, outboxCatalog); err != nil {
		b.Fatal(err)
	}
	store := postgres.NewStore(pool, postgres.StoreConfig{TTL: time.Hour, SessionCache: postgres.NewSessionCache(b.N)})
	opt := "standard_shipping"
	v, err := store.CreateSession(ctx, "", checkout.Changes{
		Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 1}},
		Buyer: &checkout.Buyer{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"},
		FulfillmentAddress: &checkout.Address{Name: "Ada", LineOne: "1 Road", City: "San Francisco", State: "CA",
			Country: "US", PostalCode: "94131"},
		FulfillmentOptionID: &opt,
	})
	if err != nil {
		b.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := store.KeepCopies(ctx, "", v.Session.ID, b.N); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "B/view")
	runtime.KeepAlive(store)
}

// A session holding usage-limited discounts keeps its view. Redemptions by other
// sessions short of the limit leave it current: its update and its completion take one
// round trip each, the counts checked under the discounts' locks. The redemption that
// reaches the limit makes it out of date: the next update answers as a read does, and a
// completion from it is refused as one from a read is, taking nothing. Without a kept
// view, a completion reads ahead of its locks and checks the counts under them: two
// round trips, where it read the view again under the locks before (three).
func TestKeptViewsOfSessionsWithUsageLimitedDiscounts(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t)
	ctx := context.Background()
	limit := 4
	e.limitedDiscount("LIMIT4", limit)
	e.oncePerBuyerDiscount("WELCOME")
	ada := e.discountSession("ada@example.com", "LIMIT4", "WELCOME")
	grace := e.discountSession("grace@example.com", "LIMIT4")
	dan := e.discountSession("dan@example.com", "LIMIT4")
	complete := func(s *postgres.Store, id, token string, buyer *checkout.Buyer) (checkout.View, int, error) {
		t.Helper()
		var view checkout.View
		var err error
		n, _ := e.trips.Measure(func() {
			view, err = s.CompleteSession(ctx, "", id, checkout.Completion{Token: token, Provider: "stripe", Buyer: buyer})
		})
		return view, n, err
	}
	// redeemElsewhere completes another buyer's session holding the code, through
	// another instance, and returns its round trips.
	redeemElsewhere := func(email string) int {
		t.Helper()
		id := e.discountSession(email, "LIMIT4")
		_, n, err := complete(e.other, id, delegateVisa(t, e.vault, id, time.Now().Add(time.Hour)).ID, nil)
		if err != nil {
			t.Fatalf("%s's completion: %v", email, err)
		}
		return n
	}
	update := func(id string, quantity int) int {
		t.Helper()
		var view checkout.View
		n, _ := e.measure(func() (err error) {
			view, err = e.store.UpdateSession(ctx, "", id, checkout.Changes{Items: []checkout.ItemRequest{{ID: "item_123", Quantity: quantity}}})
			return err
		})
		e.mustAnswerAsRead(view, id)
		return n
	}

	if n := redeemElsewhere("bob@example.com"); n != 2 {
		t.Errorf("a completion read ahead took %d round trips, want 2", n)
	}
	if n := update(dan, 2); n != 1 {
		t.Errorf("an update after another session's redemption took %d round trips, want 1 (its kept view current)", n)
	}
	if n := update(ada, 2); n != 1 {
		t.Errorf("an update from a kept view with usage-limited discounts took %d round trips, want 1", n)
	}
	view, n, err := complete(e.store, ada, delegateVisa(t, e.vault, ada, time.Now().Add(time.Hour)).ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("a completion from a kept view with usage-limited discounts took %d round trips, want 1", n)
	}
	if got := e.count(`SELECT count(*) FROM discount_redemptions WHERE order_id = $1`, view.Order.ID); got != 2 || len(view.Quote.Discounts.Applied) != 2 {
		t.Errorf("the order redeemed %d discounts and shows %+v, want both", got, view.Quote.Discounts)
	}
	redeemElsewhere("erin@example.com")
	if n := update(dan, 1); n != 1 {
		t.Errorf("an update a redemption short of the limit took %d round trips, want 1", n)
	}
	redeemElsewhere("frank@example.com") // the fourth: the limit
	if n := update(dan, 2); n != 3 {
		t.Errorf("an update after the limit was reached took %d round trips, want 3 (its kept view out of date)", n)
	}

	// grace's kept view has the code short of its limit: the completion checks it under
	// the discount's lock, finds it reached, and runs again under the locks.
	token := delegateVisa(t, e.vault, grace, time.Now().Add(time.Hour)).ID
	_, n, err = complete(e.store, grace, token, nil)
	if de, ok := checkout.AsError(err); !ok || de.Code != string(checkout.ReasonUsageLimitReached) {
		t.Fatalf("the completion past the limit: %v", err)
	}
	if n != 3 {
		t.Errorf("the completion past the limit took %d round trips, want 3 (the kept view's, then two under the locks)", n)
	}
	e.mustRefuseAsRead(err, grace, checkout.Completion{Token: token, Provider: "stripe"})
	if got := e.count(`SELECT count(*) FROM discount_redemptions WHERE discount_id = 'limited'`); got != limit {
		t.Errorf("%d redemptions of the limited code, want %d", got, limit)
	}
	if got := e.count(`SELECT count(*) FROM vault_tokens WHERE id = $1 AND used_at IS NULL`, token); got != 1 {
		t.Error("the refused completion used its vault token")
	}

	// A completion that brings another buyer than the one a per-buyer limit was counted
	// for is priced with the new buyer's redemptions, read under the locks: ada used
	// WELCOME up above.
	yolanda := e.discountSession("yolanda@example.com", "WELCOME")
	token = delegateVisa(t, e.vault, yolanda, time.Now().Add(time.Hour)).ID
	ada2 := &checkout.Buyer{FirstName: "Ada", LastName: "Lovelace", Email: "ADA@example.com"}
	_, n, err = complete(e.store, yolanda, token, ada2)
	if de, ok := checkout.AsError(err); !ok || de.Code != string(checkout.ReasonUsageLimitReached) {
		t.Fatalf("the completion that brings a buyer who used the code up: %v", err)
	}
	if n != 4 {
		t.Errorf("it took %d round trips, want 4 (the view, then three under the locks, the discounts read again for the buyer)", n)
	}
	e.mustRefuseAsRead(err, yolanda, checkout.Completion{Token: token, Provider: "stripe", Buyer: ada2})
}

// An update that sets the buyer where a discount with a per-buyer limit may apply
// prices it with the new buyer's redemptions, read along with the session's view, or
// alone beside a kept one: two round trips, as any update, where the catalog was read
// again for them after the view before (three). The answer is a read's: the code used
// up for a buyer who used it, applied for one who did not. A shop without such a
// discount reads no redemptions.
func TestUpdateReadsTheRedemptionsOfTheBuyerItSets(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t)
	ctx := context.Background()
	anonymous := func(codes ...string) string {
		t.Helper()
		v, err := e.store.CreateSession(ctx, "", checkout.Changes{
			Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 1}},
			FulfillmentAddress: &checkout.Address{Name: "Ada", LineOne: "1 Road", City: "San Francisco", State: "CA",
				Country: "US", PostalCode: "94131"},
			DiscountExtension: true, DiscountCodes: &codes,
		})
		if err != nil {
			t.Fatal(err)
		}
		return v.Session.ID
	}
	setBuyer := func(s *postgres.Store, id, email string) (checkout.View, []string) {
		t.Helper()
		var view checkout.View
		n, sent := e.measure(func() (err error) {
			view, err = s.UpdateSession(ctx, "", id, checkout.Changes{Buyer: &checkout.Buyer{FirstName: "A", LastName: "B", Email: email}})
			return err
		})
		if n != 2 {
			t.Errorf("the update that sets %s took %d round trips, want 2: %q", email, n, sent)
		}
		e.mustAnswerAsRead(view, id)
		return view, sent
	}
	reads := func(sent []string, statement string) bool {
		return slices.ContainsFunc(sent, func(s string) bool { return strings.Contains(s, statement) })
	}

	if _, sent := setBuyer(e.other, anonymous(), "ada@example.com"); reads(sent, "ListBuyerRedemptions") {
		t.Errorf("a shop without a per-buyer limit read the buyer's redemptions: %q", sent)
	}
	e.oncePerBuyerDiscount("WELCOME")
	used := e.discountSession("ada@example.com", "WELCOME")
	if _, err := e.other.CompleteSession(ctx, "", used, checkout.Completion{Token: delegateVisa(t, e.vault, used, time.Now().Add(time.Hour)).ID, Provider: "stripe"}); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*postgres.Store{"read along": e.other, "beside a kept view": e.store} {
		view, sent := setBuyer(s, anonymous("WELCOME"), "ADA@example.com")
		if dq := view.Quote.Discounts; len(dq.Applied) != 0 || len(dq.Rejected) != 1 || dq.Rejected[0].Reason != checkout.ReasonUsageLimitReached {
			t.Errorf("%s: the code for the buyer who used it up: %+v", name, dq)
		}
		if !reads(sent, "ListBuyerRedemptions") {
			t.Errorf("%s: the buyer's redemptions were not read: %q", name, sent)
		}
		if kept := s == e.store; kept == reads(sent, "GetSessionView") {
			t.Errorf("%s: GetSessionView sent %v (from a kept view: %v): %q", name, !kept, kept, sent)
		}
		if view, _ = setBuyer(s, anonymous("WELCOME"), "grace@example.com"); len(view.Quote.Discounts.Applied) != 1 {
			t.Errorf("%s: the code for a buyer who did not use it: %+v", name, view.Quote.Discounts)
		}
	}
}
