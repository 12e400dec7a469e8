package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// roundTripCeilings are the most round trips to PostgreSQL each operation may make
// (docs/PERFORMANCE.md, "Round trips"): the CPU of the server goes mostly to round
// trips, so a change that adds one must show up here, not in production.
var roundTripCeilings = []struct {
	op      string
	ceiling int
	// pending says why the ceiling is the count measured today, not the target.
	pending string
}{
	{op: "create", ceiling: 2},
	{op: "get", ceiling: 1},
	{op: "update", ceiling: 2},
	{op: "update_buyer", ceiling: 2},
	{op: "update_buyer_consents", ceiling: 2},
	{op: "delegate_payment", ceiling: 1},
	{op: "delegate_replay", ceiling: 1},
	{op: "complete", ceiling: 3},
	{op: "complete_psp", ceiling: 5},
	{op: "complete_replay", ceiling: 1},
	{op: "replay", ceiling: 1},
	{op: "cancel", ceiling: 2},
	{op: "cancel_replay", ceiling: 1},
	// With a SESSION_CACHE_SIZE, on the instance that wrote the session last.
	{op: "update_kept", ceiling: 1},
	{op: "complete_kept", ceiling: 1},
	// A session to which a usage-limited discount may apply: its counts are checked
	// under the discount's lock, in the writes' round trip.
	{op: "update_limited", ceiling: 2},
	{op: "complete_limited", ceiling: 3},
	{op: "update_limited_kept", ceiling: 1},
	{op: "complete_limited_kept", ceiling: 1},
	// One to which a discount with a per-buyer limit may apply: the update that sets
	// the buyer reads the buyer's redemptions along with the view, or alone beside a
	// kept one.
	{op: "update_per_buyer", ceiling: 2},
	{op: "complete_per_buyer", ceiling: 3},
	{op: "update_per_buyer_kept", ceiling: 2},
	{op: "complete_per_buyer_kept", ceiling: 1},
}

// withoutSessionCache configures a store without a SessionCache, whatever
// TEST_SESSION_CACHE_SIZE says: the counts of writes that start from a read, which
// roundtrips.txt gives first (its kept counts are measured on the kept env below).
func withoutSessionCache(c *postgres.StoreConfig) { c.SessionCache = nil }

// TestRoundTrips runs each checkout operation through the API, in both versions, and
// holds its round trips to PostgreSQL to its ceiling. Every POST carries an
// Idempotency-Key, as agents send them: the key's claim and record are part of the cost.
// The sessions offer marketing consents and have a buyer and an address, so a view needs
// everything a view can need (tax, discounts, consents).
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"2025-09-29", v0417} {
		t.Run(v, func(t *testing.T) {
			e := mustEnvVersion(t, v, time.Minute)
			e.storeOpts = []func(*postgres.StoreConfig){withoutSessionCache, func(c *postgres.StoreConfig) { c.ConsentOptions = consentOptions }}
			e.server = e.startServer(time.Minute)

			counts, sentBy := map[string]int{}, map[string][]string{}
			measureOn := func(on *testEnv, op string, send func() response, want int) response {
				t.Helper()
				var r response
				n, sent := on.roundTrips.Measure(func() { r = send() })
				if r.status != want {
					t.Fatalf("%s: status = %d, want %d; body: %s", op, r.status, want, r.body)
				}
				counts[op], sentBy[op] = n, sent
				t.Logf("%s: %d round trips\n\t%s", op, n, strings.Join(sent, "\n\t"))
				return r
			}
			measure := func(op string, send func() response, want int) response {
				t.Helper()
				return measureOn(e, op, send, want)
			}

			createKey := newKey()
			createBody := e.createBody(fields{items: items("item_123", 2), buyer: buyer, address: address})
			created := measure("create", func() response {
				return e.do(http.MethodPost, "/checkout_sessions", createBody, "Idempotency-Key", createKey)
			}, http.StatusCreated)
			id := created.json(t)["id"].(string)

			measure("get", func() response { return e.do(http.MethodGet, "/checkout_sessions/"+id, nil) }, http.StatusOK)

			updated := measure("update", func() response {
				return e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{items: items("item_123", 2), option: "standard_shipping"}),
					"Idempotency-Key", newKey())
			}, http.StatusOK)
			s := e.mustSession(updated, http.StatusOK)
			if s["status"] != "ready_for_payment" {
				t.Fatalf("session %s is %v, messages %v", id, s["status"], messages(s))
			}

			delegateKey, delegation := newKey(), delegateBody(id, totals(t, s)["total"], "usd", "4242424242424242", "123")
			delegated := measure("delegate_payment", func() response {
				return e.do(http.MethodPost, delegatePath, delegation, "Idempotency-Key", delegateKey)
			}, http.StatusCreated)
			token := delegated.json(t)["id"].(string)
			// The claim of a delegation rides its COMMIT: a replay runs the transaction,
			// which the record of the response aborts, and must leave the connection
			// idle, not spend a round trip on ROLLBACK.
			redelegated := measure("delegate_replay", func() response {
				return e.do(http.MethodPost, delegatePath, delegation, "Idempotency-Key", delegateKey)
			}, http.StatusCreated)
			if redelegated.header.Get("Idempotent-Replayed") != "true" || string(redelegated.body) != string(delegated.body) {
				t.Fatalf("the repeated delegation was not replayed: %s", redelegated.body)
			}

			completeKey := newKey()
			completed := measure("complete", func() response {
				return e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", e.completeBody(token), "Idempotency-Key", completeKey)
			}, http.StatusOK)
			// Agents retry completions most: the key's look-up alone answers a replay.
			recompleted := measure("complete_replay", func() response {
				return e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", e.completeBody(token), "Idempotency-Key", completeKey)
			}, http.StatusOK)
			if recompleted.header.Get("Idempotent-Replayed") != "true" || string(recompleted.body) != string(completed.body) {
				t.Fatalf("the repeated completion was not replayed: %s", recompleted.body)
			}

			// A PSP token is charged between two transactions (completeInPhases): the
			// mock gateway's tok_visa succeeds.
			psp := e.mustSession(e.do(http.MethodPost, "/checkout_sessions", createBody, "Idempotency-Key", newKey()), http.StatusCreated)["id"].(string)
			e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+psp, e.updateBody(fields{items: items("item_123", 2), option: "standard_shipping"}),
				"Idempotency-Key", newKey()), http.StatusOK)
			measure("complete_psp", func() response {
				return e.do(http.MethodPost, "/checkout_sessions/"+psp+"/complete", e.completeBody("tok_visa"), "Idempotency-Key", newKey())
			}, http.StatusOK)

			replayed := measure("replay", func() response {
				return e.do(http.MethodPost, "/checkout_sessions", createBody, "Idempotency-Key", createKey)
			}, http.StatusCreated)
			if replayed.header.Get("Idempotent-Replayed") != "true" || string(replayed.body) != string(created.body) {
				t.Fatalf("the repeated create was not replayed: %s", replayed.body)
			}

			// A cancel reads as an update does, with the claim riding the read, and
			// writes in one implicit transaction; its replay is the read's round trip.
			open := e.mustSession(e.do(http.MethodPost, "/checkout_sessions", createBody, "Idempotency-Key", newKey()), http.StatusCreated)["id"].(string)
			cancelKey := newKey()
			canceled := measure("cancel", func() response {
				return e.do(http.MethodPost, "/checkout_sessions/"+open+"/cancel", nil, "Idempotency-Key", cancelKey)
			}, http.StatusOK)
			if s := e.mustSession(canceled, http.StatusOK); s["status"] != "canceled" {
				t.Fatalf("the canceled session is %v", s["status"])
			}
			recanceled := measure("cancel_replay", func() response {
				return e.do(http.MethodPost, "/checkout_sessions/"+open+"/cancel", nil, "Idempotency-Key", cancelKey)
			}, http.StatusOK)
			if recanceled.header.Get("Idempotent-Replayed") != "true" || string(recanceled.body) != string(canceled.body) {
				t.Fatalf("the repeated cancel was not replayed: %s", recanceled.body)
			}

			// On a server that offers marketing consents (this one), the new buyer's stored
			// decisions are read along with the session's view: no catalog read of their own.
			consenting := e.mustSession(e.do(http.MethodPost, "/checkout_sessions",
				e.createBody(fields{items: items("item_123", 2), address: address}), "Idempotency-Key", newKey()), http.StatusCreated)["id"].(string)
			measure("update_buyer_consents", func() response {
				return e.do(http.MethodPost, "/checkout_sessions/"+consenting, e.updateBody(fields{buyer: buyer, option: "standard_shipping"}),
					"Idempotency-Key", newKey())
			}, http.StatusOK)

			// The usual second step of a checkout sets the buyer. On a server that offers
			// no marketing consents (the bench's), the catalog read with the session's
			// view serves the update: the buyer only counts for a discount with a
			// per-buyer limit, and the demo catalog has none.
			plain := mustEnvVersion(t, v, time.Minute)
			plain.storeOpts = []func(*postgres.StoreConfig){withoutSessionCache}
			plain.server = plain.startServer(time.Minute)
			anonymous := plain.mustSession(plain.do(http.MethodPost, "/checkout_sessions",
				plain.createBody(fields{items: items("item_123", 2), address: address}), "Idempotency-Key", newKey()), http.StatusCreated)["id"].(string)
			measureOn(plain, "update_buyer", func() response {
				return plain.do(http.MethodPost, "/checkout_sessions/"+anonymous, plain.updateBody(fields{buyer: buyer, option: "standard_shipping"}),
					"Idempotency-Key", newKey())
			}, http.StatusOK)

			// With a session cache, the instance that wrote the session last starts its
			// next update and its completion from the view it kept, and the token it
			// stored: no read (docs/PERFORMANCE.md, "The session view cache").
			kept := mustEnvVersion(t, v, time.Minute)
			kept.storeOpts = []func(*postgres.StoreConfig){func(c *postgres.StoreConfig) { c.SessionCache = postgres.NewSessionCache(100) }}
			kept.server = kept.startServer(time.Minute)
			keptID := kept.mustSession(kept.do(http.MethodPost, "/checkout_sessions",
				kept.createBody(fields{items: items("item_123", 2), address: address}), "Idempotency-Key", newKey()), http.StatusCreated)["id"].(string)
			keptUpdate := measureOn(kept, "update_kept", func() response {
				return kept.do(http.MethodPost, "/checkout_sessions/"+keptID, kept.updateBody(fields{buyer: buyer, option: "standard_shipping"}),
					"Idempotency-Key", newKey())
			}, http.StatusOK)
			keptToken := delegate(kept, keptID, totals(t, kept.mustSession(keptUpdate, http.StatusOK))["total"], "usd", visaNumber, "9871")
			measureOn(kept, "complete_kept", func() response {
				return kept.do(http.MethodPost, "/checkout_sessions/"+keptID+"/complete", kept.completeBody(keptToken), "Idempotency-Key", newKey())
			}, http.StatusOK)

			// Two shops with a discount that may apply to every session: a promotion
			// for its first orders (an automatic discount with a usage limit), and 10%
			// off each buyer's first order (one with a per-buyer limit). The update that
			// sets the buyer reads what it needs along with the view (the buyer's
			// redemptions, where they count) or beside a kept one, not the catalog
			// after it. The completion reads its view ahead of its locks, as without a
			// discount, and checks the discount's counts under its lock with the writes.
			limit, once := 1000, 1
			for _, shop := range []struct {
				name     string
				discount checkout.Discount
			}{
				{"limited", checkout.Discount{ID: "first_orders", Title: "5% off our first orders", PercentBps: 500, UsageLimit: &limit, Stackable: true}},
				{"per_buyer", checkout.Discount{ID: "first_order", Title: "10% off your first order", PercentBps: 1000, PerBuyerLimit: &once, Stackable: true}},
			} {
				for _, cached := range []bool{false, true} {
					on, suffix := mustEnvVersion(t, v, time.Minute), ""
					on.storeOpts = []func(*postgres.StoreConfig){withoutSessionCache}
					if cached {
						suffix = "_kept"
						on.storeOpts = []func(*postgres.StoreConfig){func(c *postgres.StoreConfig) { c.SessionCache = postgres.NewSessionCache(100) }}
					}
					if _, err := postgres.NewDiscounts(on.pool).Import(context.Background(), []checkout.Discount{shop.discount}); err != nil {
						t.Fatal(err)
					}
					on.server = on.startServer(time.Minute)
					sid := on.mustSession(on.do(http.MethodPost, "/checkout_sessions",
						on.createBody(fields{items: items("item_123", 2), address: address}), "Idempotency-Key", newKey()), http.StatusCreated)["id"].(string)
					ready := on.mustSession(measureOn(on, "update_"+shop.name+suffix, func() response {
						return on.do(http.MethodPost, "/checkout_sessions/"+sid, on.updateBody(fields{buyer: buyer, option: "standard_shipping"}),
							"Idempotency-Key", newKey())
					}, http.StatusOK), http.StatusOK)
					if totals(t, ready)["discount"] == 0 {
						t.Fatalf("%s: the discount took nothing off: totals %v", shop.name, totals(t, ready))
					}
					token := delegate(on, sid, totals(t, ready)["total"], "usd", visaNumber, "9871")
					measureOn(on, "complete_"+shop.name+suffix, func() response {
						return on.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", on.completeBody(token), "Idempotency-Key", newKey())
					}, http.StatusOK)
				}
			}

			checkCompleteScript(t, sentBy["complete"])
			checkBenchRoundTrips(t, counts)

			for _, c := range roundTripCeilings {
				note := ""
				if c.pending != "" {
					note = " (" + c.pending + ")"
				}
				if counts[c.op] > c.ceiling {
					t.Errorf("%s: %d round trips, the ceiling is %d%s", c.op, counts[c.op], c.ceiling, note)
				}
			}
		})
	}
}

// benchRoundTrips lists the round trips the bench charges a server at its floor for
// each request of its flow (cmd/acpload's floor line), with the operation here that
// sends the same request.
const benchRoundTrips = "../../cmd/acpload/roundtrips.txt"

// checkBenchRoundTrips fails when a count of benchRoundTrips is not the one measured,
// so that the bench's floor line follows the server's round trips either way.
func checkBenchRoundTrips(t *testing.T, counts map[string]int) {
	t.Helper()
	file, err := os.ReadFile(benchRoundTrips)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(file), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 3 && len(fields) != 5 {
			t.Fatalf("%s: malformed line %q", benchRoundTrips, line)
		}
		// An operation and its count, then, for a request that can start from a kept
		// view, that operation and its count.
		for i := 1; i < len(fields); i += 2 {
			measured, ok := counts[fields[i]]
			if !ok {
				t.Errorf("%s: %s names the operation %q, which this test does not measure", benchRoundTrips, fields[0], fields[i])
			} else if fmt.Sprint(measured) != fields[i+1] {
				t.Errorf("%s: %s (%s) makes %d round trips, the file says %s", benchRoundTrips, fields[0], fields[i], measured, fields[i+1])
			}
		}
	}
}

// completeScript is the bench's pgbench ceiling of a completion; it must send what the
// server sends, in the same round trips (docs/PERFORMANCE.md, "The pgbench script").
const completeScript = "../../cmd/acpload/complete.pgbench"

// checkCompleteScript fails when the round trips of complete.pgbench are not those
// sent, the round trips a vault-token completion made: each of its round trips is one
// statement, or the statements of a \startpipeline block, named by the "-- sqlc: Name"
// line before each (BEGIN and COMMIT as pgx names them). The order event is left out of
// sent: the bench's server has no WEBHOOK_URL. cmd/acpload's
// TestCompleteScriptIsTheServersSQL holds each statement's text to db/*.sql.go.
func checkCompleteScript(t *testing.T, sent []string) {
	t.Helper()
	script, err := os.ReadFile(completeScript)
	if err != nil {
		t.Fatal(err)
	}
	var want, pipeline []string
	inPipeline := false
	add := func(name string) {
		if inPipeline {
			pipeline = append(pipeline, name)
		} else {
			want = append(want, name)
		}
	}
	for line := range strings.SplitSeq(string(script), "\n") {
		switch line = strings.TrimSpace(line); {
		case line == `\startpipeline`:
			inPipeline, pipeline = true, nil
		case line == `\endpipeline`:
			inPipeline, want = false, append(want, "batch ["+strings.Join(pipeline, "; ")+"]")
		case strings.HasPrefix(line, "-- sqlc: "):
			add(strings.TrimPrefix(line, "-- sqlc: "))
		case line == "BEGIN;", line == "COMMIT;":
			add(strings.ToLower(strings.TrimSuffix(line, ";")))
		}
	}
	kind := regexp.MustCompile(` :(one|many|exec|execrows|copyfrom)\b`)
	var got []string
	for _, trip := range sent {
		trip = strings.Replace(kind.ReplaceAllString(trip, ""), "InsertOrderEvent; ", "", 1)
		got = append(got, trip)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s sends\n\t%s\nthe server's vault-token completion sends (less its order event)\n\t%s\nupdate the script",
			completeScript, strings.Join(want, "\n\t"), strings.Join(got, "\n\t"))
	}
}

// completeBody pays with token in e's version: a vault token, or a PSP test token
// (tok_…) through the handler that takes those.
func (e *testEnv) completeBody(token string) map[string]any {
	if !e.is0417() {
		return paymentData(token)
	}
	handler := "card_tokenized"
	if strings.HasPrefix(token, "tok_") {
		handler = "card_psp_test"
	}
	return map[string]any{"payment_data": map[string]any{
		"handler_id": handler,
		"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": token}},
	}}
}

// orderCeilings are the most round trips an order's or a cart's operation may make. A change of
// the admin API: its key's look-up, then a pipelined transaction (Orders.change) of the
// key's hold and the order's row lock with every read of the order, and of the writes
// with the record and COMMIT. A refund to the original payment reads the order's
// payment first (GetOrderPayment), as the server refunds through its gateway an order
// paid with a PSP token (Orders.WithGateway, as serve wires it); this one, paid with a
// vault token, is then recorded as any change.
// A read (the admin API's GET, the buyer's order page): one pipeline of every read.
// A page of the order list: the page, then the refunds of the orders on it, by id.
// Pipelined, the refunds' statement could not name the page's orders: it would select
// the page again at a snapshot of its own, and an order created in between would shift
// it, so that the oldest order shown would come without its refunds.
// The consents of a buyer and /metrics: one statement each.
var orderCeilings = map[string]int{"set_status": 3, "fulfil": 3, "fulfilment_event": 3, "refund": 4, "cancel_lines": 3,
	"get_order": 1, "order_page": 1, "list_orders": 2, "list_consents": 1, "metrics": 1,
	// A cart's create: its reads, with the key's look-up riding ahead of them, then its
	// writes with the key and COMMIT. A replacement or a cancel: the key's look-up, then
	// its reads (the key held, the cart locked) and its writes with the key and COMMIT.
	// A read, one pipeline.
	"create_cart": 2, "replace_cart": 3, "cancel_cart": 3, "get_cart": 1}

// TestStatementsDoNotGrowWithTheLines runs a checkout of one line and one of three
// lines, in both versions, then confirms, fulfils, refunds and cancels their orders and
// reads them back through the admin API, and wants each operation to send the same
// statements in the same round trips: a statement per line would make a cart's every
// request cost more with each item in it (docs/performance-history.md, "Ninth round"). An order
// change, an order read, the consents and /metrics are held to orderCeilings too.
func TestStatementsDoNotGrowWithTheLines(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"2025-09-29", v0417} {
		t.Run(v, func(t *testing.T) {
			e := mustEnvVersion(t, v, time.Minute, func(c *httpapi.Config) {
				c.AdminAPIKeys = []string{ordersAdminKey}
				c.MetricsAPIKeys = []string{hardeningMetricsKey}
			})
			checkout := func(lines []map[string]any, changed []map[string]any) map[string][]string {
				sent := map[string][]string{}
				measure := func(op string, send func() response, want int) response {
					t.Helper()
					var r response
					var n int
					n, sent[op] = e.roundTrips.Measure(func() { r = send() })
					if r.status != want {
						t.Fatalf("%s of %d lines: status = %d, want %d; body: %s", op, len(lines), r.status, want, r.body)
					}
					if ceiling, ok := orderCeilings[op]; ok && n > ceiling {
						t.Errorf("%s of %d lines: %d round trips, the ceiling is %d:\n\t%s", op, len(lines), n, ceiling, strings.Join(sent[op], "\n\t"))
					}
					return r
				}
				created := measure("create", func() response {
					return e.do(http.MethodPost, "/checkout_sessions", e.createBody(fields{items: lines, buyer: buyer, address: address}), "Idempotency-Key", newKey())
				}, http.StatusCreated)
				id := created.json(t)["id"].(string)
				measure("get", func() response { return e.do(http.MethodGet, "/checkout_sessions/"+id, nil) }, http.StatusOK)
				s := e.mustSession(measure("update", func() response {
					return e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{items: changed, option: "standard_shipping"}), "Idempotency-Key", newKey())
				}, http.StatusOK), http.StatusOK)
				if s["status"] != "ready_for_payment" {
					t.Fatalf("session %s of %d lines is %v, messages %v", id, len(lines), s["status"], messages(s))
				}
				token := measure("delegate_payment", func() response {
					return e.do(http.MethodPost, delegatePath, delegateBody(id, totals(t, s)["total"], "usd", "4242424242424242", "123"), "Idempotency-Key", newKey())
				}, http.StatusCreated).json(t)["id"].(string)
				order, ids := completedOrder(t, measure("complete", func() response {
					return e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", e.completeBody(token), "Idempotency-Key", newKey())
				}, http.StatusOK))
				// A PSP token is charged between two transactions (completeInPhases).
				psp := e.mustSession(e.do(http.MethodPost, "/checkout_sessions", e.createBody(fields{items: changed, buyer: buyer, address: address}),
					"Idempotency-Key", newKey()), http.StatusCreated)["id"].(string)
				e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+psp, e.updateBody(fields{option: "standard_shipping"}), "Idempotency-Key", newKey()), http.StatusOK)
				pspOrder, pspIDs := completedOrder(t, measure("complete_psp", func() response {
					return e.do(http.MethodPost, "/checkout_sessions/"+psp+"/complete", e.completeBody("tok_visa"), "Idempotency-Key", newKey())
				}, http.StatusOK))
				var all []map[string]any
				for i, l := range ids {
					all = append(all, map[string]any{"id": l, "quantity": changed[i]["quantity"]})
				}
				measure("set_status", func() response {
					return ordersAdmin(e, http.MethodPost, "/admin/orders/"+order+"/status", map[string]any{"status": "confirmed"})
				}, http.StatusOK)
				fulfilment := lastFulfillmentID(measure("fulfil", func() response {
					return ordersAdmin(e, http.MethodPost, "/admin/orders/"+order+"/fulfillments", map[string]any{"type": "shipping", "line_items": all})
				}, http.StatusCreated).json(t))
				measure("fulfilment_event", func() response {
					return ordersAdmin(e, http.MethodPost, "/admin/orders/"+order+"/fulfillments/"+fulfilment+"/events", map[string]any{"type": "in_transit"})
				}, http.StatusCreated)
				var one []map[string]any
				for _, l := range ids {
					one = append(one, map[string]any{"id": l, "quantity": 1})
				}
				measure("refund", func() response {
					return ordersAdmin(e, http.MethodPost, "/admin/orders/"+order+"/refunds", map[string]any{"type": "original_payment", "line_items": one})
				}, http.StatusCreated)
				var pspAll []map[string]any
				for i, l := range pspIDs {
					pspAll = append(pspAll, map[string]any{"id": l, "quantity": changed[i]["quantity"]})
				}
				measure("cancel_lines", func() response {
					return ordersAdmin(e, http.MethodPost, "/admin/orders/"+pspOrder+"/cancellations", map[string]any{"line_items": pspAll, "reason": "out_of_stock"})
				}, http.StatusCreated)
				measure("get_order", func() response { return ordersAdmin(e, http.MethodGet, "/admin/orders/"+order, nil) }, http.StatusOK)
				measure("order_page", func() response { return e.do(http.MethodGet, "/orders/"+order, nil) }, http.StatusOK)
				measure("list_orders", func() response { return ordersAdmin(e, http.MethodGet, "/admin/orders?limit=10", nil) }, http.StatusOK)
				measure("list_consents", func() response {
					return ordersAdmin(e, http.MethodGet, "/admin/consents?email=ada%40example.com", nil)
				}, http.StatusOK)
				measure("metrics", func() response { return e.do(http.MethodGet, "/metrics", nil, safetyAuth(hardeningMetricsKey)...) }, http.StatusOK)
				if e.is0417() {
					cart := measure("create_cart", func() response {
						return e.do(http.MethodPost, "/carts", map[string]any{"line_items": lines}, "Idempotency-Key", newKey())
					}, http.StatusCreated).json(t)["id"].(string)
					measure("get_cart", func() response { return e.do(http.MethodGet, "/carts/"+cart, nil) }, http.StatusOK)
					measure("replace_cart", func() response {
						return e.do(http.MethodPut, "/carts/"+cart, map[string]any{"line_items": changed}, "Idempotency-Key", newKey())
					}, http.StatusOK)
					measure("cancel_cart", func() response {
						return e.do(http.MethodPost, "/carts/"+cart+"/cancel", nil, "Idempotency-Key", newKey())
					}, http.StatusOK)
				}
				return sent
			}
			one := checkout(items("item_123", 1), items("item_123", 2))
			three := checkout(items("item_123", 1, "item_456", 1, "ebook_001", 1), items("item_123", 2, "item_456", 3, "ebook_001", 1))
			for _, op := range []string{"create", "get", "update", "delegate_payment", "complete", "complete_psp", "set_status", "fulfil", "fulfilment_event", "refund", "cancel_lines", "get_order", "order_page", "list_orders", "list_consents", "metrics", "create_cart", "get_cart", "replace_cart", "cancel_cart"} {
				if !slices.Equal(one[op], three[op]) {
					t.Errorf("%s sends more for three lines than for one:\none line\n\t%s\nthree lines\n\t%s",
						op, strings.Join(one[op], "\n\t"), strings.Join(three[op], "\n\t"))
				}
			}
		})
	}
}

// completedOrder is the order id and the line ids of the completed session r answers.
func completedOrder(t *testing.T, r response) (order string, lines []string) {
	t.Helper()
	m := r.json(t)
	for _, l := range m["line_items"].([]any) {
		lines = append(lines, l.(map[string]any)["id"].(string))
	}
	return m["order"].(map[string]any)["id"].(string), lines
}

// TestMCPCostsWhatRESTCosts: a tool call of the MCP binding stands for a REST request of
// 2026-04-17, down to the database. The same checkout runs over REST and over MCP, with
// the same payloads and an idempotency key each, and every operation must send the same
// statements in the same round trips over both: a transport adds none of its own, so
// TestRoundTrips' ceilings hold for MCP too.
func TestMCPCostsWhatRESTCosts(t *testing.T) {
	t.Parallel()
	e := mcpEnv(t)
	cs := e.mustMCP(mcpKeyA)
	auth := []string{"Authorization", "Bearer " + mcpKeyA}
	rest := func(method, path string, body any, key string) func() response {
		return func() response {
			headers := auth
			if key != "" {
				headers = append(slices.Clone(auth), "Idempotency-Key", key)
			}
			return e.do(method, path, body, headers...)
		}
	}
	sentBy := map[string]map[string][]string{"REST": {}, "MCP": {}}
	measure := func(transport, op string, send func() (ok bool, answer string)) {
		t.Helper()
		var ok bool
		var answer string
		_, sent := e.roundTrips.Measure(func() { ok, answer = send() })
		if !ok {
			t.Fatalf("%s %s failed: %s", transport, op, answer)
		}
		sentBy[transport][op] = sent
	}
	overREST := func(op string, want int, send func() response) response {
		t.Helper()
		var r response
		measure("REST", op, func() (bool, string) { r = send(); return r.status == want, string(r.body) })
		return r
	}
	overMCP := func(op, tool string, args map[string]any) map[string]any {
		t.Helper()
		var c toolCall
		measure("MCP", op, func() (bool, string) {
			c = call(t, cs, tool, args)
			if c.err != nil {
				return false, c.err.Error()
			}
			return !c.result.IsError, fmt.Sprint(c.result.StructuredContent)
		})
		s, _ := c.result.StructuredContent.(map[string]any)
		return s
	}
	delegate := func(id string, total int64) string {
		t.Helper()
		r := e.do(http.MethodPost, delegatePath, delegateBody(id, total, "usd", "4242424242424242", "123"), append(slices.Clone(auth), "Idempotency-Key", newKey())...)
		if r.status != http.StatusCreated {
			t.Fatalf("delegate: %d %s", r.status, r.body)
		}
		return r.json(t)["id"].(string)
	}
	// A vault token's completion, with the buyer 2026-04-17 asks for at completion.
	completeWith := func(token string) map[string]any {
		b := e.completeBody(token)
		b["buyer"] = mcpComplete(token)["buyer"]
		return b
	}
	total := func(s map[string]any) int64 {
		t.Helper()
		for _, tot := range s["totals"].([]any) {
			if m := tot.(map[string]any); m["type"] == "total" {
				return int64(m["amount"].(float64))
			}
		}
		t.Fatalf("no total in %v", s)
		return 0
	}

	// REST.
	createKey := newKey()
	id := overREST("create", http.StatusCreated, rest(http.MethodPost, "/checkout_sessions", mcpCreate, createKey)).json(t)["id"].(string)
	overREST("get", http.StatusOK, rest(http.MethodGet, "/checkout_sessions/"+id, nil, ""))
	s := overREST("update", http.StatusOK, rest(http.MethodPost, "/checkout_sessions/"+id, mcpSelect, newKey())).json(t)
	token := delegate(id, total(s))
	overREST("complete", http.StatusOK, rest(http.MethodPost, "/checkout_sessions/"+id+"/complete", completeWith(token), newKey()))
	overREST("replay", http.StatusCreated, rest(http.MethodPost, "/checkout_sessions", mcpCreate, createKey))
	other := e.mustSession(e.do(http.MethodPost, "/checkout_sessions", mcpCreate, append(slices.Clone(auth), "Idempotency-Key", newKey())...), http.StatusCreated)["id"].(string)
	overREST("cancel", http.StatusOK, rest(http.MethodPost, "/checkout_sessions/"+other+"/cancel", map[string]any{}, newKey()))

	// MCP.
	createKey = newKey()
	id = overMCP("create", "create_checkout_session", map[string]any{"meta": meta(createKey), "payload": mcpCreate})["id"].(string)
	overMCP("get", "get_checkout_session", map[string]any{"meta": meta(""), "id": id})
	s = overMCP("update", "update_checkout_session", map[string]any{"meta": meta(newKey()), "id": id, "payload": mcpSelect})
	token = delegate(id, total(s))
	overMCP("complete", "complete_checkout_session", map[string]any{"meta": meta(newKey()), "id": id, "payload": completeWith(token)})
	overMCP("replay", "create_checkout_session", map[string]any{"meta": meta(createKey), "payload": mcpCreate})
	other = call(t, cs, "create_checkout_session", map[string]any{"meta": meta(newKey()), "payload": mcpCreate}).mustSession(e, "CheckoutSession")["id"].(string)
	overMCP("cancel", "cancel_checkout_session", map[string]any{"meta": meta(newKey()), "id": other})

	for _, op := range []string{"create", "get", "update", "complete", "replay", "cancel"} {
		r, m := sentBy["REST"][op], sentBy["MCP"][op]
		t.Logf("%s: %d round trips over REST, %d over MCP\n\t%s", op, len(r), len(m), strings.Join(m, "\n\t"))
		if !slices.Equal(r, m) {
			t.Errorf("%s over MCP:\n\t%s\nover REST:\n\t%s", op, strings.Join(m, "\n\t"), strings.Join(r, "\n\t"))
		}
	}
}

// TestAdminDiscountRoundTrips: a discount's create and disable are, after the key's
// look-up, a pipelined transaction of two round trips (the key's hold, the write with
// the discount read back; the record and COMMIT), and a read is one statement. The
// writes ran statement by statement before, 6 round trips each; a code already taken
// is still a conflict.
func TestAdminDiscountRoundTrips(t *testing.T) {
	t.Parallel()
	e := discountEnv(t, "", 500, nil)
	auth := func(key string) []string {
		if key == "" {
			return []string{"Authorization", "Bearer " + adminKey}
		}
		return []string{"Authorization", "Bearer " + adminKey, "Idempotency-Key", key}
	}
	measure := func(op string, ceiling int, send func() response, want int) response {
		t.Helper()
		var r response
		n, sent := e.roundTrips.Measure(func() { r = send() })
		if r.status != want {
			t.Fatalf("%s: status = %d, want %d; body: %s", op, r.status, want, r.body)
		}
		t.Logf("%s: %d round trips\n\t%s", op, n, strings.Join(sent, "\n\t"))
		if n > ceiling {
			t.Errorf("%s: %d round trips, the ceiling is %d:\n\t%s", op, n, ceiling, strings.Join(sent, "\n\t"))
		}
		return r
	}
	spring := map[string]any{"code": "spring", "title": "Spring 15%", "percent_bps": 1500, "usage_limit": 10}
	id := measure("create", 3, func() response {
		return e.do(http.MethodPost, "/admin/discounts", spring, auth(newKey())...)
	}, http.StatusCreated).json(t)["id"].(string)
	e.mustError(e.do(http.MethodPost, "/admin/discounts", spring, auth(newKey())...), http.StatusConflict, "conflict", "$.code")
	measure("list", 1, func() response { return e.do(http.MethodGet, "/admin/discounts", nil, auth("")...) }, http.StatusOK)
	measure("get", 1, func() response { return e.do(http.MethodGet, "/admin/discounts/"+id, nil, auth("")...) }, http.StatusOK)
	if d := measure("disable", 3, func() response {
		return e.do(http.MethodPost, "/admin/discounts/"+id+"/disable", nil, auth(newKey())...)
	}, http.StatusOK).json(t); d["disabled"] != true {
		t.Errorf("disabled: %v", d)
	}
	e.mustError(e.do(http.MethodPost, "/admin/discounts/disc_nope/disable", nil, auth(newKey())...), http.StatusNotFound, "not_found", "")
}

// routeCounts names, for every route of the server, the test that holds its round trips
// to PostgreSQL, or why none needs to. A route added without a count fails
// TestEveryRouteHasItsRoundTripsCounted: a session's cancel took 13 round trips because
// no test counted it (docs/performance-history.md, "Tenth round").
var routeCounts = map[string]string{
	"GET /health":                                       "none: answers without the database",
	"HEAD /health":                                      "none: answers without the database",
	"GET /ready":                                        "none: a ping of the pool, an empty query",
	"HEAD /ready":                                       "none: a ping of the pool, an empty query",
	"GET /.well-known/acp.json":                         "none: answers without the database",
	"GET /metrics":                                      "TestStatementsDoNotGrowWithTheLines",
	"POST /mcp":                                         "TestMCPCostsWhatRESTCosts",
	"POST /checkout_sessions":                           "TestRoundTrips",
	"GET /checkout_sessions/{id}":                       "TestRoundTrips",
	"POST /checkout_sessions/{id}":                      "TestRoundTrips",
	"POST /checkout_sessions/{id}/cancel":               "TestRoundTrips",
	"POST /checkout_sessions/{id}/complete":             "TestRoundTrips",
	"POST /agentic_commerce/delegate_payment":           "TestRoundTrips",
	"POST /carts":                                       "TestStatementsDoNotGrowWithTheLines",
	"GET /carts/{id}":                                   "TestStatementsDoNotGrowWithTheLines",
	"PUT /carts/{id}":                                   "TestStatementsDoNotGrowWithTheLines",
	"POST /carts/{id}/cancel":                           "TestStatementsDoNotGrowWithTheLines",
	"GET /orders/{id}":                                  "TestStatementsDoNotGrowWithTheLines (the order page)",
	"HEAD /orders/{id}":                                 "TestStatementsDoNotGrowWithTheLines (the order page)",
	"GET /admin/orders/{id}":                            "TestStatementsDoNotGrowWithTheLines",
	"POST /admin/orders/{id}/fulfillments":              "TestStatementsDoNotGrowWithTheLines",
	"POST /admin/orders/{id}/refunds":                   "TestStatementsDoNotGrowWithTheLines",
	"POST /admin/orders/{id}/cancellations":             "TestStatementsDoNotGrowWithTheLines",
	"POST /admin/orders/{id}/status":                    "TestStatementsDoNotGrowWithTheLines",
	"POST /admin/orders/{id}/fulfillments/{fid}/events": "TestStatementsDoNotGrowWithTheLines",
	"GET /admin/orders":                                 "TestStatementsDoNotGrowWithTheLines",
	"GET /admin/consents":                               "TestStatementsDoNotGrowWithTheLines",
	"GET /admin/discounts":                              "TestAdminDiscountRoundTrips",
	"POST /admin/discounts":                             "TestAdminDiscountRoundTrips",
	"GET /admin/discounts/{id}":                         "TestAdminDiscountRoundTrips",
	"POST /admin/discounts/{id}/disable":                "TestAdminDiscountRoundTrips",
}

// TestEveryRouteHasItsRoundTripsCounted walks the routes of a server with every part
// switched on (carts, the admin API, discounts, consents, metrics, discovery, MCP) and
// wants each in routeCounts, and nothing there that is not a route.
func TestEveryRouteHasItsRoundTripsCounted(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, v0417, time.Minute, func(c *httpapi.Config) {
		c.AdminAPIKeys = []string{ordersAdminKey}
		c.PublicBaseURL = "https://shop.example"
	})
	routes := httpapi.Routes(api(e.server))
	for _, r := range routes {
		if _, ok := routeCounts[r]; !ok {
			t.Errorf("%s: no test counts its round trips; count them and name the test in routeCounts", r)
		}
	}
	for r := range routeCounts {
		if !slices.Contains(routes, r) {
			t.Errorf("routeCounts names %s, which is not a route of the server", r)
		}
	}
}
