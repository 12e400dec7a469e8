package httpapi_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/catalog"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/config"
	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/metrics"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const testFingerprintKey = "test-fingerprint-key-0123456789abcdef"

// testCatalog is the catalog every API test starts with.
var testCatalog = []catalog.Product{
	{ID: "prod_tee", Title: "Tee", Variants: []catalog.Variant{
		{ID: "item_123", Title: "Tee", PriceAmount: 1500, Currency: "usd", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping},
		{ID: "item_456", Title: "Hoodie", PriceAmount: 3000, Currency: "usd", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping},
		{ID: "item_789", Title: "Cap", PriceAmount: 900, Currency: "usd", Available: false, AvailabilityStatus: "out_of_stock", Fulfillment: checkout.FulfillmentShipping},
	}},
	{ID: "prod_ebook", Title: "E-book", Variants: []catalog.Variant{
		{ID: "ebook_001", Title: "E-book", PriceAmount: 999, Currency: "usd", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentDigital},
	}},
	{ID: "prod_eur", Title: "Mug", Variants: []catalog.Variant{
		{ID: "mug_eur", Title: "Mug", PriceAmount: 1200, Currency: "eur", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping},
	}},
}

// testEnv is one API server on its own freshly migrated database.
type testEnv struct {
	t      *testing.T
	pool   *pgxpool.Pool
	server *httptest.Server
	logs   *bytes.Buffer
	// version is the API-Version e sends with every request ("": none, so the server
	// serves its default version); schemas are that version's, which responses must match.
	version string
	schemas *testkit.SchemaSet
	// gateway is the PSP of every server instance of e: the mock, counting the charges
	// it lets through, so a test can assert how often a session was charged.
	gateway *payment.CountingGateway
	// storeOpts configure the session store of the instances e starts from then on.
	storeOpts []func(*postgres.StoreConfig)
	// roundTrips counts the round trips of pool (TestRoundTrips).
	roundTrips *pgtest.RoundTrips
}

// mustEnv starts a server on a new database holding testCatalog.
func mustEnv(t *testing.T, opts ...func(*httpapi.Config)) *testEnv {
	t.Helper()
	return mustEnvWith(t, time.Minute, opts...)
}

// mustEnvWith is mustEnv with idempotency claims recovered after recoverAfter.
func mustEnvWith(t *testing.T, recoverAfter time.Duration, opts ...func(*httpapi.Config)) *testEnv {
	t.Helper()
	return mustEnvVersion(t, "", recoverAfter, opts...)
}

// forEachVersion runs a behaviour test once per API version of the version table, each
// in a subtest named after the version with its own env speaking that version: sending
// it as API-Version and validating responses against its schemas.
func forEachVersion(t *testing.T, f func(t *testing.T, e *testEnv), opts ...func(*httpapi.Config)) {
	t.Helper()
	for _, v := range httpapi.SupportedVersions {
		t.Run(v, func(t *testing.T) {
			f(t, mustEnvVersion(t, v, time.Minute, opts...))
		})
	}
}

// mustEnvVersion is mustEnvWith speaking version ("": sending no API-Version).
func mustEnvVersion(t *testing.T, version string, recoverAfter time.Duration, opts ...func(*httpapi.Config)) *testEnv {
	t.Helper()
	schemaVersion := version
	if schemaVersion == "" {
		schemaVersion = httpapi.DefaultVersion
	}
	roundTrips := &pgtest.RoundTrips{}
	pool := pgtest.MustPoolTraced(t, roundTrips)
	if _, err := postgres.ImportCatalog(context.Background(), pool, testCatalog); err != nil {
		t.Fatalf("import catalog: %v", err)
	}
	e := &testEnv{
		t: t, pool: pool, logs: &bytes.Buffer{}, gateway: &payment.CountingGateway{},
		version: version, schemas: testkit.Schemas(t, schemaVersion), roundTrips: roundTrips,
	}
	e.server = e.startServer(recoverAfter, opts...)
	return e
}

// startServer starts one more server instance on e's database, as a serve process
// builds it (order events, the order API refunding through its gateway and metrics
// included), configured by opts and logging into e.logs. Several instances on one
// database stand for a load-balanced deployment or a restart.
func (e *testEnv) startServer(recoverAfter time.Duration, opts ...func(*httpapi.Config)) *httptest.Server {
	e.t.Helper()
	cfg := httpapi.Config{
		MaxBodyBytes:       1 << 20,
		CardFingerprintKey: []byte(testFingerprintKey),
		Links:              []httpapi.Link{{Type: "terms_of_use", URL: "https://shop.example/legal/terms-of-use"}},
	}
	for _, o := range opts {
		o(&cfg)
	}
	pool := e.pool
	// One store serves sessions and carts: carts live as long as sessions (SESSION_TTL).
	sc := postgres.StoreConfig{TTL: time.Hour, Gateway: e.gateway, PublicBaseURL: "https://shop.example", OrderEvents: true}
	// Each instance keeps its own views, as serve's processes do.
	sc.SessionCache = postgres.NewSessionCache(testSessionCacheSize(e.t))
	for _, o := range e.storeOpts {
		o(&sc)
	}
	store := postgres.NewStore(pool, sc)
	m := metrics.New(pool, postgres.NewOutbox(pool, time.Minute).Backlog)
	if sc.SessionCache != nil {
		m.WatchSessionCache(sc.SessionCache.Counts)
	}
	api := httpapi.New(cfg, httpapi.Deps{
		Sessions:    store,
		Carts:       store,
		Consents:    postgres.NewConsents(pool),
		Vault:       postgres.NewVault(pool, payment.NewFingerprinter([]byte(testFingerprintKey))).WithSessionCache(sc.SessionCache),
		Idempotency: postgres.NewIdempotency(pool, recoverAfter),
		Replays:     postgres.NewSignatureReplays(pool),
		Orders:      postgres.NewOrders(pool, true).WithGateway(e.gateway),
		Discounts:   postgres.NewDiscounts(pool),
		Metrics:     m,
		Unavailable: postgres.IsUnavailable,
		Ready:       func(ctx context.Context) error { return pool.Ping(ctx) },
		Logger:      slog.New(slog.NewJSONHandler(&lockedWriter{w: e.logs}, nil)),
	})
	srv := httptest.NewServer(api)
	e.t.Cleanup(srv.Close)
	return srv
}

// testSessionCacheSize is the SESSION_CACHE_SIZE of every instance the API tests start:
// TEST_SESSION_CACHE_SIZE, serve's default when unset. make test runs the package a
// second time without a cache (0), so that every behaviour and every race is checked
// both with writes that start from kept views and with writes that read.
func testSessionCacheSize(t *testing.T) int {
	t.Helper()
	v := os.Getenv("TEST_SESSION_CACHE_SIZE")
	if v == "" {
		return config.DefaultSessionCacheSize
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("TEST_SESSION_CACHE_SIZE must be an integer >= 0, got %q", v)
	}
	return n
}

// on returns a copy of e that sends its requests to srv, another instance on e's database.
func (e *testEnv) on(srv *httptest.Server) *testEnv {
	c := *e
	c.server = srv
	return &c
}

// api is the server behind srv.
func api(srv *httptest.Server) *httpapi.Server { return srv.Config.Handler.(*httpapi.Server) }

// response is a decoded HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
	// path is the request path (set by do), which picks the Error schema of mustError.
	path string
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// client is a JSON client of e's server, sending e's API-Version.
func (e *testEnv) client() *testkit.Client {
	c := &testkit.Client{Base: e.server.URL, HTTP: e.server.Client()}
	if e.version != "" {
		c.Header = http.Header{"Api-Version": {e.version}}
	}
	return c
}

// do sends a request; body may be a string (sent as is), nil, or a value to encode.
// headers are name, value pairs; an empty value removes the header. A POST in a version
// that requires an Idempotency-Key gets a fresh one unless headers name the header
// (with an empty value to send none).
func (e *testEnv) do(method, path string, body any, headers ...string) response {
	e.t.Helper()
	if method == http.MethodPost && e.requiresKey() && !namesHeader(headers, "Idempotency-Key") {
		headers = append(headers, "Idempotency-Key", newKey())
	}
	r, err := e.client().Do(method, path, body, headers...)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: r.Status, header: r.Header, body: r.Body, path: path}
}

// mustSession expects status and a body that is a valid CheckoutSession of e's version.
func (e *testEnv) mustSession(r response, status int) map[string]any {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	e.schemas.Session(r.body)
	return r.json(e.t)
}

// mustCompleted expects a 200 complete response that is a valid CheckoutSession with
// its order in e's version (testkit's SessionWithOrder, checklist I-03) and returns it.
func (e *testEnv) mustCompleted(r response) map[string]any {
	e.t.Helper()
	if r.status != http.StatusOK {
		e.t.Fatalf("complete: status = %d, want 200; body: %s", r.status, r.body)
	}
	e.schemas.SessionWithOrder(r.body)
	return r.json(e.t)
}

// mustError expects status and a flat ACP Error with code and (when not "") param that
// is valid against the Error schema of its route in e's version: delegate_payment's for
// requests to delegatePath, checkout's for the others.
func (e *testEnv) mustError(r response, status int, code, param string) map[string]any {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	m := r.json(e.t)
	if m["code"] != code {
		e.t.Errorf("code = %v, want %s; body: %s", m["code"], code, r.body)
	}
	if param != "" && m["param"] != param {
		e.t.Errorf("param = %v, want %s; body: %s", m["param"], param, r.body)
	}
	e.schemas.Error(r.body, r.path)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("Content-Type = %q", ct)
	}
	return m
}

// mustDelegateError expects a delegate_payment refusal: status, the spec's code, param
// and the precise reason (a fragment of the message).
func (e *testEnv) mustDelegateError(r response, status int, code, param, reason string) map[string]any {
	e.t.Helper()
	m := e.mustError(r, status, code, param)
	if msg, _ := m["message"].(string); !strings.Contains(msg, reason) {
		e.t.Errorf("message %q lacks %q", msg, reason)
	}
	return m
}

// mustDelegateRefusal expects a delegate_payment refusal whose precise reason is
// reason: the spec's invalid_card, with "(reason: …)" in the message unless the reason
// is invalid_card itself.
func (e *testEnv) mustDelegateRefusal(r response, status int, reason, param string) map[string]any {
	e.t.Helper()
	fragment := "(reason: " + reason + ")"
	if reason == "invalid_card" {
		fragment = ""
	}
	return e.mustDelegateError(r, status, "invalid_card", param, fragment)
}

// mustCreate creates a session from body and returns it.
func (e *testEnv) mustCreate(body any) map[string]any {
	e.t.Helper()
	return e.mustSession(e.do(http.MethodPost, "/checkout_sessions", body), http.StatusCreated)
}

var (
	address = map[string]any{
		"name": "John Doe", "line_one": "1234 Chat Road", "city": "San Francisco",
		"state": "CA", "country": "US", "postal_code": "94131",
	}
	buyer = map[string]any{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}
)

func items(pairs ...any) []map[string]any {
	var out []map[string]any
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, map[string]any{"id": pairs[i], "quantity": pairs[i+1]})
	}
	return out
}

// totals returns the session totals by type.
func totals(t *testing.T, s map[string]any) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, raw := range s["totals"].([]any) {
		tot := raw.(map[string]any)
		out[tot["type"].(string)] = int64(tot["amount"].(float64))
	}
	return out
}

// messages returns "code@param" for each error message of the session.
func messages(s map[string]any) []string {
	var out []string
	for _, raw := range s["messages"].([]any) {
		m := raw.(map[string]any)
		if m["type"] == "error" {
			out = append(out, m["code"].(string)+"@"+m["param"].(string))
		}
	}
	return out
}

// keyedRequestHash is the request_hash the server stores for a body outside
// delegate_payment: an HMAC, keyed with the card fingerprint key, of the canonical hash.
// Tests that plant idempotency rows use it.
func keyedRequestHash(body string) string {
	m := hmac.New(sha256.New, []byte(testFingerprintKey))
	m.Write([]byte("idempotency-request-hash:" + idempotency.Hash([]byte(body))))
	return "hmac:" + hex.EncodeToString(m.Sum(nil))
}

// lockedWriter serialises writes to a buffer shared by concurrent handlers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
