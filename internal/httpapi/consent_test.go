package httpapi_test

import (
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// Marketing consent (MC-RFC), affiliate attribution (AA-RFC) and order notes over
// HTTP in 2026-04-17.

const consentAdminKey = "consent-admin-key-0123456789"

var consentOptions = []checkout.ConsentOption{
	{Channel: "email", DisplayText: "News and offers by email", PrivacyPolicyURL: "https://shop.example/privacy"},
	{Channel: "sms", DisplayText: "Deals by text message", PrivacyPolicyURL: "https://shop.example/privacy"},
}

// consentEnv is a 2026-04-17 env whose sessions offer opts, with the admin API on.
func consentEnv(t *testing.T, opts []checkout.ConsentOption) *testEnv {
	t.Helper()
	withAdmin := func(c *httpapi.Config) { c.AdminAPIKeys = []string{consentAdminKey} }
	e := mustEnvVersion(t, v0417, time.Minute, withAdmin)
	e.storeOpts = []func(*postgres.StoreConfig){func(c *postgres.StoreConfig) { c.ConsentOptions = opts }}
	e.server = e.startServer(time.Minute, withAdmin)
	return e
}

// buy0417 creates a session for buyer b (with fulfillment_details fd, nil: the address
// only) plus the create's extra fields, makes it ready and completes it with a vault
// card plus the complete's extra fields. It returns the create and complete responses.
func buy0417(e *testEnv, b, fd, createExtra, completeExtra map[string]any) (created, completed map[string]any) {
	e.t.Helper()
	body := e.createBody(fields{items: items("item_123", 1), buyer: b, address: address})
	if fd != nil {
		body["fulfillment_details"] = fd
	}
	maps.Copy(body, createExtra)
	created = e.mustCreate(body)
	sid := created["id"].(string)
	s := e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+sid,
		e.updateBody(fields{items: items("item_123", 1), option: "standard_shipping"})), http.StatusOK)
	token := delegate(e, sid, totals(e.t, s)["total"], "usd", "4242424242424242", "123")
	complete := map[string]any{"payment_data": map[string]any{
		"handler_id": "card_tokenized",
		"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": token}},
	}}
	maps.Copy(complete, completeExtra)
	completed = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", complete), http.StatusOK)
	if completed["status"] != "completed" {
		e.t.Fatalf("complete: %v, messages %v", completed["status"], messages(completed))
	}
	return created, completed
}

// subscribed reads marketing_consent_options of s as channel → is_subscribed.
func subscribed(t *testing.T, s map[string]any) map[string]bool {
	t.Helper()
	opts, ok := s["marketing_consent_options"].([]any)
	if !ok {
		t.Fatalf("no marketing_consent_options in %v", s["id"])
	}
	out := map[string]bool{}
	for _, o := range opts {
		m := o.(map[string]any)
		if m["display_text"] == "" || m["privacy_policy_url"] != "https://shop.example/privacy" {
			t.Errorf("option %v", m)
		}
		out[m["channel"].(string)] = m["is_subscribed"].(bool)
	}
	return out
}

// storedConsents lists the stored decisions as "channel contact opted_in".
func storedConsents(e *testEnv) []string {
	e.t.Helper()
	rows, err := e.pool.Query(e.t.Context(), `SELECT channel || ' ' || contact || ' ' || opted_in FROM marketing_consents ORDER BY 1`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestMarketingConsent0417(t *testing.T) {
	t.Parallel()
	e := consentEnv(t, consentOptions)
	ada := map[string]any{"email": "Ada@Example.com", "full_name": "Ada Lovelace"}

	// A new buyer: both channels offered, neither subscribed. The agent reports email
	// and sms (no phone can be resolved: ignored) and a channel not offered (ignored).
	created, completed := buy0417(e, ada, nil, nil, map[string]any{"marketing_consents": []any{
		map[string]any{"channel": "email", "opted_in": true},
		map[string]any{"channel": "sms", "opted_in": true},
		map[string]any{"channel": "push", "opted_in": true},
	}})
	if got := subscribed(t, created); len(got) != 2 || got["email"] || got["sms"] {
		t.Errorf("new buyer: %v", got)
	}
	if got := subscribed(t, completed); !got["email"] || got["sms"] {
		t.Errorf("after opting in: %v", got)
	}
	if got := storedConsents(e); strings.Join(got, ",") != "email ada@example.com true" {
		t.Errorf("stored %v", got)
	}

	// The returning buyer (the address's case does not matter) is shown as subscribed;
	// a completion without marketing_consents keeps the state.
	created, _ = buy0417(e, map[string]any{"email": "ada@example.com"}, nil, nil, nil)
	if got := subscribed(t, created); !got["email"] || got["sms"] {
		t.Errorf("returning buyer: %v", got)
	}
	if got := storedConsents(e); strings.Join(got, ",") != "email ada@example.com true" {
		t.Errorf("omission changed the state: %v", got)
	}

	// An opt-out is respected; the phone comes from fulfillment_details when the buyer
	// has none.
	fd := map[string]any{"address": address, "phone_number": "+15551234567"}
	_, completed = buy0417(e, ada, fd, nil, map[string]any{"marketing_consents": []any{
		map[string]any{"channel": "email", "opted_in": false},
		map[string]any{"channel": "sms", "opted_in": true},
	}})
	if got := subscribed(t, completed); got["email"] || !got["sms"] {
		t.Errorf("after opting out of email: %v", got)
	}
	if got := storedConsents(e); strings.Join(got, ",") != "email ada@example.com false,sms +15551234567 true" {
		t.Errorf("stored %v", got)
	}

	// The merchant reads them.
	admin := func(query string) []any {
		r := e.do(http.MethodGet, "/admin/consents?"+query, nil, "Authorization", "Bearer "+consentAdminKey, "API-Version", "")
		if r.status != http.StatusOK {
			t.Fatalf("admin %s: %d %s", query, r.status, r.body)
		}
		return r.json(t)["data"].([]any)
	}
	if got := admin("email=ADA%40example.com"); len(got) != 1 || got[0].(map[string]any)["opted_in"] != false ||
		got[0].(map[string]any)["order_id"] == "" {
		t.Errorf("admin email: %v", got)
	}
	if got := admin("phone=%2B15551234567"); len(got) != 1 || got[0].(map[string]any)["channel"] != "sms" {
		t.Errorf("admin phone: %v", got)
	}
	if got := admin("email=nobody%40example.com"); len(got) != 0 {
		t.Errorf("admin unknown: %v", got)
	}
	if r := e.do(http.MethodGet, "/admin/consents", nil, "Authorization", "Bearer "+consentAdminKey, "API-Version", ""); r.status != http.StatusBadRequest {
		t.Errorf("admin without contact: %d", r.status)
	}

	// A duplicated channel is refused, and nothing is charged or stored.
	sid := e.mustCreate(e.createBody(fields{items: items("item_123", 1), buyer: ada}))["id"].(string)
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", map[string]any{
		"payment_data": map[string]any{"handler_id": "card_tokenized",
			"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": "vt_x"}}},
		"marketing_consents": []any{map[string]any{"channel": "sms", "opted_in": true}, map[string]any{"channel": "sms", "opted_in": false}},
	}), http.StatusBadRequest, "invalid", "$.marketing_consents[1].channel")

	// 2025-09-29 has no such field: the same session reads schema-valid there.
	if s := e.as("2025-09-29").getSession(sid); s["marketing_consent_options"] != nil {
		t.Errorf("2025-09-29 shows consent options")
	}
}

// A merchant that offers nothing shows no options and stores no decision.
func TestMarketingConsentNotOffered0417(t *testing.T) {
	t.Parallel()
	e := consentEnv(t, nil)
	created, completed := buy0417(e, buyer, nil, nil, map[string]any{"marketing_consents": []any{
		map[string]any{"channel": "email", "opted_in": true},
	}})
	for _, s := range []map[string]any{created, completed} {
		if _, ok := s["marketing_consent_options"]; ok {
			t.Errorf("options shown: %v", s["marketing_consent_options"])
		}
	}
	if got := storedConsents(e); len(got) != 0 {
		t.Errorf("stored %v", got)
	}
}

// Attribution: first touch at create, last touch at complete, both stored, neither
// ever in a response, a replay or an order event; a different provider at each touch
// does not block the checkout.
func TestAffiliateAttribution0417(t *testing.T) {
	t.Parallel()
	e := consentEnv(t, consentOptions)
	secrets := []string{"atp_first_secret", "pub_first", "atp_last_secret", "pub_last", "impact.com", "other.net", "spring"}
	first := map[string]any{"provider": "impact.com", "token": "atp_first_secret", "publisher_id": "pub_first",
		"touchpoint": "first", "metadata": map[string]any{"campaign": "spring"}}
	last := map[string]any{"provider": "other.net", "token": "atp_last_secret", "publisher_id": "pub_last",
		"touchpoint": "last", "source": map[string]any{"type": "url", "url": "https://publisher.example/review"}}

	var bodies []string
	record := func(r response) response { bodies = append(bodies, string(r.body)); return r }
	body := e.createBody(fields{items: items("item_123", 1), buyer: buyer, address: address})
	body["affiliate_attribution"] = first
	sid := e.mustSession(record(e.do(http.MethodPost, "/checkout_sessions", body)), http.StatusCreated)["id"].(string)
	s := e.mustSession(record(e.do(http.MethodPost, "/checkout_sessions/"+sid,
		e.updateBody(fields{items: items("item_123", 1), option: "standard_shipping"}))), http.StatusOK)
	record(e.do(http.MethodGet, "/checkout_sessions/"+sid, nil))
	token := delegate(e, sid, totals(t, s)["total"], "usd", "4242424242424242", "123")
	complete := map[string]any{
		"payment_data": map[string]any{"handler_id": "card_tokenized",
			"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": token}}},
		"affiliate_attribution": last,
	}
	key := newKey()
	done := e.mustSession(record(e.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", complete, "Idempotency-Key", key)), http.StatusOK)
	if done["status"] != "completed" {
		t.Fatalf("complete: %v", done["status"])
	}
	// A replay answers the recorded response, without the attribution either.
	record(e.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", complete, "Idempotency-Key", key))
	record(e.do(http.MethodGet, "/checkout_sessions/"+sid, nil))
	record(e.as("2025-09-29").do(http.MethodGet, "/checkout_sessions/"+sid, nil))
	orderID := done["order"].(map[string]any)["id"].(string)
	record(e.do(http.MethodGet, "/admin/orders/"+orderID, nil, "Authorization", "Bearer "+consentAdminKey, "API-Version", ""))
	// The order events are what every webhook body is encoded from.
	rows, err := e.pool.Query(t.Context(), `SELECT payload::text FROM order_events`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, p)
	}
	rows.Close()
	if len(bodies) < 9 {
		t.Fatalf("only %d bodies", len(bodies))
	}
	for _, b := range bodies {
		if strings.Contains(b, "affiliate_attribution") {
			t.Errorf("attribution echoed: %s", b)
		}
		for _, secret := range secrets {
			if strings.Contains(b, secret) {
				t.Errorf("%q echoed: %s", secret, b)
			}
		}
	}

	stored := dbText(e, `SELECT string_agg(concat_ws(' ', touch, provider, publisher_id, order_id IS NOT NULL,
		attribution->>'token', attribution->>'source_url', attribution->'metadata'->>'campaign'), ',' ORDER BY touch)
		FROM affiliate_attributions WHERE checkout_session_id = $1`, sid)
	want := "first impact.com pub_first f atp_first_secret spring,last other.net pub_last t atp_last_secret https://publisher.example/review"
	if stored != want {
		t.Errorf("stored %q\nwant   %q", stored, want)
	}
}

// Order notes: kept with the session through create and update (null clears), given
// to the order at completion and shown in its confirmation, in the response and in
// the order events; never on the session itself (2026-04-17 has no such field there).
func TestOrderNotes0417(t *testing.T) {
	t.Parallel()
	e := consentEnv(t, nil)
	long := strings.Repeat("n", checkout.MaxOrderNotes+1)
	body := e.createBody(fields{items: items("item_123", 1), buyer: buyer, address: address})
	body["order_notes"] = long
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", body), http.StatusBadRequest, "invalid", "$.order_notes")

	body["order_notes"] = "Ring twice."
	s := e.mustCreate(body)
	sid := s["id"].(string)
	if _, ok := s["order_notes"]; ok {
		t.Errorf("session echoes order_notes")
	}
	if n := dbText(e, `SELECT order_notes FROM checkout_sessions WHERE id = $1`, sid); n != "Ring twice." {
		t.Errorf("stored %q", n)
	}
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+sid, map[string]any{"order_notes": long}),
		http.StatusBadRequest, "invalid", "$.order_notes")
	e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+sid, map[string]any{"order_notes": nil}), http.StatusOK)
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions WHERE id = $1 AND order_notes IS NULL`, sid); n != 1 {
		t.Errorf("null did not clear the notes")
	}
	e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+sid, map[string]any{"order_notes": "Leave at the back door."}), http.StatusOK)

	_, completed := buy0417(e, buyer, nil, map[string]any{"order_notes": "Gift: no invoice in the box."}, nil)
	conf, _ := completed["order"].(map[string]any)["confirmation"].(map[string]any)
	if conf["order_notes"] != "Gift: no invoice in the box." {
		t.Errorf("order confirmation = %v", conf)
	}
	// The completion's own notes replace the session's.
	_, completed = buy0417(e, buyer, nil, map[string]any{"order_notes": "old"}, map[string]any{"order_notes": "new"})
	order := completed["order"].(map[string]any)
	if conf, _ := order["confirmation"].(map[string]any); conf["order_notes"] != "new" {
		t.Errorf("order confirmation = %v", conf)
	}
	if n := dbText(e, `SELECT payload->'order'->>'notes' FROM order_events WHERE order_id = $1`, order["id"]); n != "new" {
		t.Errorf("order event notes = %q", n)
	}
	r := e.do(http.MethodGet, "/admin/orders/"+order["id"].(string), nil, "Authorization", "Bearer "+consentAdminKey, "API-Version", "")
	if r.status != http.StatusOK || r.json(t)["order_notes"] != "new" {
		t.Errorf("admin order: %d %s", r.status, r.body)
	}
	// An order without notes has no confirmation to show.
	_, completed = buy0417(e, buyer, nil, nil, nil)
	if c, ok := completed["order"].(map[string]any)["confirmation"]; ok {
		t.Errorf("confirmation without notes: %v", c)
	}
}
