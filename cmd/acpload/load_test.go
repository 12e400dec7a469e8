package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/catalog"
)

// fakeACP answers the flow like the server does; badReplay makes replays differ.
func fakeACP(t *testing.T, badReplay bool) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	completed := map[string]string{} // Idempotency-Key -> body
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		admin := strings.HasPrefix(r.URL.Path, "/admin/") && (r.Method == http.MethodGet || r.Header.Get("Idempotency-Key") != "")
		if r.Header.Get("Api-Version") != apiVersion || (r.Header.Get("Idempotency-Key") == "" && !admin) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"type":"invalid_request","code":"missing_headers","message":"x"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch p := r.URL.Path; {
		case p == "/checkout_sessions":
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"cs_1","status":"not_ready_for_payment"}`))
		case p == "/checkout_sessions/cs_1":
			_, _ = w.Write([]byte(`{"id":"cs_1","status":"ready_for_payment"}`))
		case p == "/checkout_sessions/cs_1/cancel":
			_, _ = w.Write([]byte(`{"id":"cs_1","status":"canceled"}`))
		case p == "/agentic_commerce/delegate_payment":
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"vt_1","metadata":{}}`))
		case strings.HasSuffix(p, "/complete"):
			key := r.Header.Get("Idempotency-Key")
			mu.Lock()
			body, seen := completed[key]
			if !seen {
				body = `{"id":"cs_1","status":"completed","order":{"id":"ord_` + key + `"},` +
					`"line_items":[{"id":"li_1","item":{"id":"item_123","quantity":2}},{"id":"li_2","item":{"id":"item_456","quantity":1}}]}`
				completed[key] = body
			}
			mu.Unlock()
			if seen {
				w.Header().Set("Idempotent-Replayed", "true")
				if badReplay {
					body = strings.Replace(body, "ord_", "ord_other_", 1)
				}
			}
			_, _ = w.Write([]byte(body))
		case strings.HasPrefix(p, "/admin/orders/ord_"):
			// The admin API of the flow's afterSale: the admin key, the order's lines.
			body, _ := io.ReadAll(r.Body)
			order := strings.Split(p, "/")[3]
			switch {
			case r.Header.Get("Authorization") != "Bearer admin-key":
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"type":"invalid_request","code":"unauthorized","message":"x"}`))
			case r.Method == http.MethodGet && p == "/admin/orders/"+order:
				_, _ = w.Write([]byte(`{"id":"` + order + `"}`))
			case r.Method == http.MethodPost && strings.HasSuffix(p, "/fulfillments") &&
				strings.Contains(string(body), `"line_items":[{"id":"li_1","quantity":2},{"id":"li_2","quantity":1}]`):
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`{"id":"` + order + `"}`))
			case r.Method == http.MethodPost && strings.HasSuffix(p, "/refunds") &&
				strings.Contains(string(body), `"line_items":[{"id":"li_1","quantity":1}]`):
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`{"id":"` + order + `"}`))
			default:
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"type":"invalid_request","code":"unexpected_admin_request","message":"x"}`))
			}
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"type":"invalid_request","code":"not_found","message":"x"}`))
		}
	}))
}

func TestRunLoadFlows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		bad    bool
		client string
	}{{false, clientLean}, {true, clientLean}, {false, clientStd}, {true, clientStd}} {
		bad := tc.bad
		srv := fakeACP(t, bad)
		cfg := loadConfig{name: "test", baseURL: srv.URL, concurrency: 3, units: 30}
		clients := newAgentClients(cfg.concurrency, true, tc.client)
		rep, err := runLoad(context.Background(), cfg, clients, func(ctx context.Context, a *agent) error { return a.flow(ctx) })
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if bad {
			if rep.Flows != 0 || rep.FailedFlows != 30 || len(rep.Failures) != 1 ||
				rep.Failures[0] != (Failure{Endpoint: "complete_replay", Status: 200, Code: "body differs from the first response", Count: 30}) {
				t.Errorf("%s: differing replays: %d ok, %d failed, %+v", tc.client, rep.Flows, rep.FailedFlows, rep.Failures)
			}
			continue
		}
		if rep.Flows != 30 || rep.FailedFlows != 0 || len(rep.Failures) != 0 || rep.Requests != 150 {
			t.Errorf("%s: flows = %d ok, %d failed, %d requests, failures %+v", tc.client, rep.Flows, rep.FailedFlows, rep.Requests, rep.Failures)
		}
		for _, name := range []string{"create_session", "update_session", "delegate_payment", "complete", "complete_replay"} {
			if e := rep.Endpoint(name); e.Count != 30 || e.P99Ms <= 0 {
				t.Errorf("%s: %s = %+v", tc.client, name, e)
			}
		}
	}
}

// With -cancel, each flow abandons its ready session: create, update, cancel, and
// nothing is paid.
func TestRunLoadAbandonedCheckouts(t *testing.T) {
	t.Parallel()
	srv := fakeACP(t, false)
	defer srv.Close()
	cfg := loadConfig{name: "test", baseURL: srv.URL, concurrency: 2, units: 10, cancel: true}
	rep, err := runLoad(context.Background(), cfg, newAgentClients(cfg.concurrency, true, clientLean), func(ctx context.Context, a *agent) error { return a.flow(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Flows != 10 || len(rep.Failures) != 0 || rep.Requests != 30 {
		t.Errorf("flows = %d ok, %d requests, failures %+v", rep.Flows, rep.Requests, rep.Failures)
	}
	for name, want := range map[string]int{"create_session": 10, "update_session": 10, "cancel_session": 10, "delegate_payment": 0, "complete": 0} {
		if e := rep.Endpoint(name); e.Count != want {
			t.Errorf("%s = %+v, want %d requests", name, e, want)
		}
	}
}

// With an admin key, each flow goes on through the admin API: the order read, all its
// lines shipped, one unit of the first refunded, each timed as its own endpoint.
func TestRunLoadAfterSale(t *testing.T) {
	t.Parallel()
	srv := fakeACP(t, false)
	defer srv.Close()
	for _, key := range []string{"admin-key", "wrong-key"} {
		cfg := loadConfig{name: "test", baseURL: srv.URL, concurrency: 2, units: 10, adminKey: key}
		rep, err := runLoad(context.Background(), cfg, newAgentClients(cfg.concurrency, true, clientLean), func(ctx context.Context, a *agent) error { return a.flow(ctx) })
		if err != nil {
			t.Fatal(err)
		}
		if key == "wrong-key" {
			if rep.Flows != 0 || len(rep.Failures) != 1 || rep.Failures[0] != (Failure{Endpoint: "admin_get_order", Status: 401, Code: "unauthorized", Count: 10}) {
				t.Errorf("a refused admin key: %d ok, failures %+v", rep.Flows, rep.Failures)
			}
			continue
		}
		if rep.Flows != 10 || len(rep.Failures) != 0 || rep.Requests != 80 {
			t.Errorf("flows = %d ok, %d requests, failures %+v", rep.Flows, rep.Requests, rep.Failures)
		}
		for _, name := range []string{"admin_get_order", "admin_fulfil", "admin_refund"} {
			if e := rep.Endpoint(name); e.Count != 10 {
				t.Errorf("%s = %+v", name, e)
			}
		}
	}
}

func TestRunLoadWarmupIsNotCounted(t *testing.T) {
	t.Parallel()
	srv := fakeACP(t, false)
	defer srv.Close()
	cfg := loadConfig{name: "test", baseURL: srv.URL, concurrency: 2, duration: 200 * time.Millisecond, warmup: 200 * time.Millisecond}
	var total int
	var mu sync.Mutex
	rep, err := runLoad(context.Background(), cfg, newAgentClients(2, false, clientLean), func(ctx context.Context, a *agent) error {
		mu.Lock()
		total++
		mu.Unlock()
		return a.flow(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Flows == 0 || rep.Flows >= total {
		t.Errorf("%d flows counted of %d run: the warm-up must be run but not counted", rep.Flows, total)
	}
	if rep.ElapsedSeconds < 0.2 || rep.ElapsedSeconds > 1 {
		t.Errorf("elapsed %.3fs for a 200ms run", rep.ElapsedSeconds)
	}
}

func TestRunLoadStopsWhenWorkRunsOut(t *testing.T) {
	t.Parallel()
	srv := fakeACP(t, false)
	defer srv.Close()
	cfg := loadConfig{name: "test", baseURL: srv.URL, concurrency: 2, duration: time.Minute}
	rep, err := runLoad(context.Background(), cfg, newAgentClients(2, false, clientLean), func(context.Context, *agent) error { return errExhausted })
	if err != nil || rep.Stopped == "" {
		t.Errorf("exhausted run: err %v, stopped %q", err, rep.Stopped)
	}
}

// The carts of -lines are bodies the server takes: distinct items the demo catalog sells
// (available, in usd), one of each; one line is the flow's usual create body.
func TestCartOfLinesIsOfTheDemoCatalog(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../../internal/catalog/demo/products.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	products, err := catalog.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	sells := map[string]bool{}
	for _, p := range products {
		for _, v := range p.Variants {
			sells[v.ID] = v.Available && v.Currency == "usd"
		}
	}
	if got := createBodyOf(1); got != createBody {
		t.Errorf("createBodyOf(1) = %s, want createBody %s", got, createBody)
	}
	for n := 1; n <= len(cartItems); n++ {
		var body struct {
			Items []struct {
				ID       string `json:"id"`
				Quantity int    `json:"quantity"`
			} `json:"items"`
			Address map[string]string `json:"fulfillment_address"`
		}
		if err := json.Unmarshal([]byte(createBodyOf(n)), &body); err != nil {
			t.Fatalf("createBodyOf(%d) is not JSON: %v", n, err)
		}
		seen := map[string]bool{}
		for _, it := range body.Items {
			if !sells[it.ID] || seen[it.ID] || it.Quantity != 1 {
				t.Errorf("createBodyOf(%d): item %s x%d (sold: %v, repeated: %v)", n, it.ID, it.Quantity, sells[it.ID], seen[it.ID])
			}
			seen[it.ID] = true
		}
		if len(body.Items) != n || body.Address["postal_code"] != "94131" {
			t.Errorf("createBodyOf(%d) = %d items, address %v", n, len(body.Items), body.Address)
		}
	}
}
