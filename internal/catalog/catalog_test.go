package catalog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

const demoFile = "demo/products.jsonl"

// variant returns a minimal valid feed variant with the given id and price amount (raw
// JSON, so tests can put floats or strings there).
func variant(id, amount string) string {
	return `{"id":"` + id + `","title":"Title ` + id + `","price":{"amount":` + amount + `,"currency":"USD"}}`
}

// product returns a minimal valid feed product holding variants.
func product(id string, variants ...string) string {
	return `{"id":"` + id + `","variants":[` + strings.Join(variants, ",") + `]}`
}

// shipped is the Variant that variant(id, amount) parses to.
func shipped(id string, amount int64) Variant {
	return Variant{ID: id, Title: "Title " + id, PriceAmount: amount, Currency: "usd", Available: true,
		AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping}
}

func TestParse(t *testing.T) {
	t.Parallel()
	twoProducts := []Product{
		{ID: "p1", Title: "Title v1", Variants: []Variant{shipped("v1", 1500), shipped("v2", 0)}},
		{ID: "p2", Title: "Title v3", Variants: []Variant{shipped("v3", 3000)}},
	}
	withVariant := func(raw string, want Variant) testCase {
		return testCase{input: product("p", raw), want: []Product{{ID: "p", Title: want.Title, Variants: []Variant{want}}}}
	}
	tests := map[string]testCase{
		"jsonl": {
			input: product("p1", variant("v1", "1500"), variant("v2", "0")) + "\n" + product("p2", variant("v3", "3000")) + "\n",
			want:  twoProducts,
		},
		"jsonl without final newline, with CRLF and blank lines": {
			input: "\n  \r\n" + product("p1", variant("v1", "1500"), variant("v2", "0")) + "\r\n\r\n\t\n" + product("p2", variant("v3", "3000")),
			want:  twoProducts,
		},
		"jsonl with byte order mark": {
			input: "\xef\xbb\xbf" + product("p1", variant("v1", "1500"), variant("v2", "0")) + "\n" + product("p2", variant("v3", "3000")),
			want:  twoProducts,
		},
		"array": {
			input: "[\n  " + product("p1", variant("v1", "1500"), variant("v2", "0")) + ",\n  " + product("p2", variant("v3", "3000")) + "\n]\n",
			want:  twoProducts,
		},
		"array on one line": {
			input: "[" + product("p1", variant("v1", "1500"), variant("v2", "0")) + "," + product("p2", variant("v3", "3000")) + "]",
			want:  twoProducts,
		},
		"upsert products request": {
			input: "{\n \"products\": [\n" + product("p1", variant("v1", "1500"), variant("v2", "0")) + ",\n" + product("p2", variant("v3", "3000")) + "\n ]\n}\n",
			want:  twoProducts,
		},
		"product title and url as given": {
			input: `{"id":"p","title":"Shirt","url":"https://example.com/shirt","variants":[` + variant("v", "1") + `]}`,
			want:  []Product{{ID: "p", Title: "Shirt", URL: "https://example.com/shirt", Variants: []Variant{shipped("v", 1)}}},
		},
		"empty product title falls back to the first variant's": {
			input: `{"id":"p","title":"","variants":[` + variant("v", "1") + `]}`,
			want:  []Product{{ID: "p", Title: "Title v", Variants: []Variant{shipped("v", 1)}}},
		},
		"largest amount": {
			input: product("p", variant("v", "100000000000")),
			want:  []Product{{ID: "p", Title: "Title v", Variants: []Variant{shipped("v", 100_000_000_000)}}},
		},
		"other currency": withVariant(`{"id":"v","title":"T","price":{"amount":5,"currency":"EUR"}}`,
			Variant{ID: "v", Title: "T", PriceAmount: 5, Currency: "eur", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping}),
		"availability empty object": withVariant(`{"id":"v","title":"T","price":{"amount":5,"currency":"USD"},"availability":{}}`,
			Variant{ID: "v", Title: "T", PriceAmount: 5, Currency: "usd", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping}),
		"available false without status": withVariant(`{"id":"v","title":"T","price":{"amount":5,"currency":"USD"},"availability":{"available":false}}`,
			Variant{ID: "v", Title: "T", PriceAmount: 5, Currency: "usd", Available: false, AvailabilityStatus: "out_of_stock", Fulfillment: checkout.FulfillmentShipping}),
		"status backorder without available": withVariant(`{"id":"v","title":"T","price":{"amount":5,"currency":"USD"},"availability":{"status":"backorder"}}`,
			Variant{ID: "v", Title: "T", PriceAmount: 5, Currency: "usd", Available: true, AvailabilityStatus: "backorder", Fulfillment: checkout.FulfillmentShipping}),
		"status discontinued without available": withVariant(`{"id":"v","title":"T","price":{"amount":5,"currency":"USD"},"availability":{"status":"discontinued"}}`,
			Variant{ID: "v", Title: "T", PriceAmount: 5, Currency: "usd", Available: false, AvailabilityStatus: "discontinued", Fulfillment: checkout.FulfillmentShipping}),
		"status upper-case out of stock": withVariant(`{"id":"v","title":"T","price":{"amount":5,"currency":"USD"},"availability":{"status":"OUT_OF_STOCK"}}`,
			Variant{ID: "v", Title: "T", PriceAmount: 5, Currency: "usd", Available: false, AvailabilityStatus: "OUT_OF_STOCK", Fulfillment: checkout.FulfillmentShipping}),
		"unknown status is available": withVariant(`{"id":"v","title":"T","price":{"amount":5,"currency":"USD"},"availability":{"status":"made_to_order"}}`,
			Variant{ID: "v", Title: "T", PriceAmount: 5, Currency: "usd", Available: true, AvailabilityStatus: "made_to_order", Fulfillment: checkout.FulfillmentShipping}),
		"available wins over status": withVariant(`{"id":"v","title":"T","price":{"amount":5,"currency":"USD"},"availability":{"available":true,"status":"out_of_stock"}}`,
			Variant{ID: "v", Title: "T", PriceAmount: 5, Currency: "usd", Available: true, AvailabilityStatus: "out_of_stock", Fulfillment: checkout.FulfillmentShipping}),
		"digital, case-insensitive": withVariant(`{"id":"v","title":"T","price":{"amount":5,"currency":"USD"},"categories":[{"value":"Books"},{"taxonomy":"Fulfillment","value":"DIGITAL"}]}`,
			Variant{ID: "v", Title: "T", PriceAmount: 5, Currency: "usd", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentDigital}),
		"digital value in another taxonomy is shipped": withVariant(`{"id":"v","title":"T","price":{"amount":5,"currency":"USD"},"categories":[{"taxonomy":"merchant","value":"digital"}]}`,
			Variant{ID: "v", Title: "T", PriceAmount: 5, Currency: "usd", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping}),
		"every schema field accepted": withVariant(`{"id":"v","title":"T","description":{"plain":"p","html":"<p>p</p>","markdown":"*p*"},`+
			`"url":"https://example.com/v","barcodes":[{"type":"GTIN","value":"1"}],"price":{"amount":5,"currency":"USD"},`+
			`"list_price":{"amount":7,"currency":"USD"},"unit_price":{"amount":1,"currency":"USD","measure":{"value":12.5,"unit":"oz"},"reference":{"value":1,"unit":"oz"}},`+
			`"availability":{"available":true,"status":"preorder"},"categories":[{"value":"x","taxonomy":"y"}],"condition":["new"],`+
			`"variant_options":[{"name":"Size","value":"M"}],"media":[{"type":"image","url":"https://example.com/i.jpg","alt_text":"a","width":1,"height":2}],`+
			`"seller":{"name":"S","links":[{"type":"faq","title":"FAQ","url":"https://example.com/faq"}]},"marketplace":{"name":"M"}}`,
			Variant{ID: "v", Title: "T", PriceAmount: 5, Currency: "usd", Available: true, AvailabilityStatus: "preorder", Fulfillment: checkout.FulfillmentShipping}),
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(strings.NewReader(tc.input))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

type testCase struct {
	input string
	want  []Product
}

// wantErr is one expected LineError; msg need only be part of the message.
type wantErr struct {
	line int
	path string
	msg  string
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	good := product("p1", variant("v1", "100"))
	tests := map[string]struct {
		input string
		want  []wantErr
	}{
		"empty file":       {"", []wantErr{{1, "$", "no products"}}},
		"only blank lines": {"\n  \n\r\n\t\n", []wantErr{{1, "$", "no products"}}},
		"empty array":      {" [ ] ", []wantErr{{1, "$", "no products"}}},
		"empty upsert":     {`{"products":[]}`, []wantErr{{1, "$", "no products"}}},
		"unknown field": {
			good + "\n" + `{"id":"p2","colour":"red","variants":[{"id":"v2","title":"T","price":{"amount":1,"currency":"USD","tax":0}}]}`,
			[]wantErr{{2, "$.colour", `unknown field "colour"`}, {2, "$.variants[0].price.tax", `unknown field "tax"`}},
		},
		"unknown field needing quotes": {
			`{"id":"p","variants":[` + variant("v", "1") + `],"a b":1}`,
			[]wantErr{{1, `$["a b"]`, `unknown field "a b"`}},
		},
		"trailing data": {
			good + `{"id":"p2"}` + "\n" + product("p3", variant("v3", "1")) + " x",
			[]wantErr{{1, "$", fmt.Sprintf("unexpected data at byte %d", len(good)+1)}, {2, "$", "unexpected data"}},
		},
		"trailing closing brace": {good + "}", []wantErr{{1, "$", "unexpected data"}}},
		"missing price": {
			`{"id":"p","variants":[{"id":"v","title":"T"}]}`,
			[]wantErr{{1, "$.variants[0]", "price is required: a variant without a price cannot be sold"}},
		},
		"lower-case currency": {
			`{"id":"p","variants":[{"id":"v","title":"T","price":{"amount":1,"currency":"usd"}}]}`,
			[]wantErr{{1, "$.variants[0].price.currency", `must be a three-letter upper-case ISO 4217 code such as "USD", got "usd"`}},
		},
		"negative amount": {product("p", variant("v", "-1")), []wantErr{{1, "$.variants[0].price.amount", "must not be negative, got -1"}}},
		"float amount":    {product("p", variant("v", "19.99")), []wantErr{{1, "$.variants[0].price.amount", "must be an integer number of minor units (1999 for 19.99), got 19.99"}}},
		"float amount with zero fraction": {
			product("p", variant("v", "1500.0")), []wantErr{{1, "$.variants[0].price.amount", "must be an integer number of minor units (1999 for 19.99), got 1500.0"}},
		},
		"string amount": {product("p", variant("v", `"1500"`)), []wantErr{{1, "$.variants[0].price.amount", `must be an integer, got string "1500"`}}},
		"amount over the cap": {
			product("p", variant("v", "100000000001")), []wantErr{{1, "$.variants[0].price.amount", "must be at most 100000000000 minor units"}},
		},
		"amount beyond int64": {
			product("p", variant("v", "99999999999999999999")), []wantErr{{1, "$.variants[0].price.amount", "out of range"}},
		},
		"missing amount and currency": {
			`{"id":"p","variants":[{"id":"v","title":"T","price":{}}]}`,
			[]wantErr{{1, "$.variants[0].price", "amount is required"}, {1, "$.variants[0].price", "currency is required"}},
		},
		"list price checked like price": {
			`{"id":"p","variants":[{"id":"v","title":"T","price":{"amount":1,"currency":"USD"},"list_price":{"amount":-5,"currency":"US"}}]}`,
			[]wantErr{{1, "$.variants[0].list_price.amount", "must not be negative"}, {1, "$.variants[0].list_price.currency", "ISO 4217"}},
		},
		"duplicate variant id across lines": {
			good + "\n\n" + product("p2", variant("v2", "1"), variant("v1", "2")),
			[]wantErr{{3, "$.variants[1].id", `duplicate variant id "v1": already used on line 1 at $.variants[0].id`}},
		},
		"duplicate variant id in one product": {
			product("p", variant("v", "1"), variant("v", "2")),
			[]wantErr{{1, "$.variants[1].id", `duplicate variant id "v": already used on line 1 at $.variants[0].id`}},
		},
		"duplicate variant id in a bad product still claims the id": {
			product("p1", variant("v1", "-1")) + "\n" + product("p2", variant("v1", "1")),
			[]wantErr{{1, "$.variants[0].price.amount", "negative"}, {2, "$.variants[0].id", `duplicate variant id "v1": already used on line 1`}},
		},
		"duplicate product id": {
			good + "\n" + product("p1", variant("v2", "1")),
			[]wantErr{{2, "$.id", `duplicate product id "p1": already used on line 1`}},
		},
		"several bad lines": {
			good + "\n" +
				product("p2", variant("v2", "1.5")) + "\n" +
				"\n" +
				product("p3", variant("v3", "1")) + "\n" +
				`{"id":"p4","variants":[{"id":"v4","title":"T"}]}` + "\n" +
				"not json\n" +
				`{"id":"p6","variants":[` + variant("v6", "1") + `],"extra":true}` + "\n",
			[]wantErr{
				{2, "$.variants[0].price.amount", "must be an integer number of minor units (1999 for 19.99), got 1.5"},
				{5, "$.variants[0]", "price is required"},
				{6, "$", "invalid JSON at byte 2 of the line: invalid character 'o' in literal null"},
				{7, "$.extra", "unknown field"},
			},
		},
		"missing ids and variants": {
			`{"title":"x"}` + "\n" + `{"id":"p","variants":[{"title":"T","price":{"amount":1,"currency":"USD"}}]}`,
			[]wantErr{{1, "$", "id is required"}, {1, "$", "variants is required"}, {2, "$.variants[0]", "id is required"}},
		},
		"empty ids and title": {
			`{"id":"","variants":[{"id":"","title":"","price":{"amount":1,"currency":"USD"}}]}`,
			[]wantErr{{1, "$.id", "must not be empty"}, {1, "$.variants[0].id", "must not be empty"}, {1, "$.variants[0].title", "must not be empty"}},
		},
		"id too long": {
			product(strings.Repeat("x", 257), variant(strings.Repeat("é", 129), "1")),
			[]wantErr{{1, "$.id", "is 257 bytes long, at most 256"}, {1, "$.variants[0].id", "is 258 bytes long, at most 256"}},
		},
		"NUL in a stored string": {
			`{"id":"p\u0000","variants":[` + variant("v", "1") + `]}`,
			[]wantErr{{1, "$.id", "NUL"}},
		},
		"no variants": {`{"id":"p","variants":[]}`, []wantErr{{1, "$.variants", "must not be empty: a product without variants has nothing to sell"}}},
		"nulls": {
			`{"id":"p","title":null,"variants":[{"id":"v","title":"T","price":null,"availability":{"available":null}}]}`,
			[]wantErr{
				{1, "$.title", "must not be null"},
				{1, "$.variants[0].price", "must not be null"},
				{1, "$.variants[0].availability.available", "must not be null"},
			},
		},
		"wrong types": {
			`{"id":7,"variants":{"id":"v"}}` + "\n" +
				`{"id":"p","variants":[{"id":"v","title":["T"],"price":{"amount":1,"currency":"USD"},"availability":{"available":"yes"},"condition":"new","media":[{"type":"image","url":"u","width":1.5}]}]}`,
			[]wantErr{
				{1, "$.id", "must be a string, got number 7"},
				{1, "$.variants", "must be an array, got an object"},
				{2, "$.variants[0].title", "must be a string, got an array"},
				{2, "$.variants[0].availability.available", `must be true or false, got string "yes"`},
				{2, "$.variants[0].condition", "must be an array"},
				{2, "$.variants[0].media[0].width", "must be an integer, got 1.5"},
			},
		},
		"nested required fields and min properties": {
			`{"id":"p","description":{},"variants":[{"id":"v","title":"T","price":{"amount":1,"currency":"USD"},"barcodes":[{"type":"GTIN"}],"unit_price":{"amount":1,"currency":"USD","measure":{"value":1,"unit":"oz"}}}]}`,
			[]wantErr{
				{1, "$.description", "at least 1 field"},
				{1, "$.variants[0].barcodes[0]", "value is required"},
				{1, "$.variants[0].unit_price", "reference is required"},
			},
		},
		"line is not an object": {good + "\n[" + good + "]\n42", []wantErr{{2, "$", "must be a JSON object, got an array"}, {3, "$", "must be a JSON object, got number 42"}}},
		"array element errors use the element's line": {
			"[\n" + good + ",\n\n  " + product("p2", variant("v2", "-3")) + ",\n" + `{"id":"p3",` + "\n" + `"variants":[{"id":"v1","title":"T","price":{"amount":1,"currency":"USD"}}]}` + "\n]",
			[]wantErr{{4, "$.variants[0].price.amount", "must not be negative"}, {5, "$.variants[0].id", `duplicate variant id "v1": already used on line 2`}},
		},
		"array syntax error": {
			"[\n" + good + ",\n" + product("p2", variant("v2", "-3")) + ",\n{\"id\": }\n]",
			[]wantErr{{3, "$.variants[0].price.amount", "must not be negative"}, {4, "$", "invalid JSON"}},
		},
		"unterminated array":   {"[\n" + good + ",\n", []wantErr{{2, "$", "invalid JSON"}}},
		"data after the array": {"[" + good + "]\n\n[]", []wantErr{{3, "$", "unexpected data after the JSON array"}}},
		"upsert request with an unknown key": {
			"{\"feed\": \"x\",\n\"products\": [\n" + good + "\n]}",
			[]wantErr{{1, "$.feed", `unknown field "feed"`}},
		},
		"upsert request products not an array": {`{"products": {"id":"p"}}`, []wantErr{{1, "$.products", "must be an array of products, got an object"}}},
		"upsert request product error": {
			"{\"products\": [\n" + good + ",\n" + product("p2", variant("v2", `"x"`)) + "]}",
			[]wantErr{{3, "$.variants[0].price.amount", `must be an integer, got string "x"`}},
		},
		"upsert request on one line of JSON Lines is not an upsert request": {
			`{"products":[` + good + "]}\n" + product("p2", variant("v2", "1")),
			[]wantErr{{1, "$.products", "unknown field"}, {1, "$", "id is required"}, {1, "$", "variants is required"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(strings.NewReader(tc.input))
			if got != nil {
				t.Errorf("Parse returned products along with an error: %+v", got)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error = %v (%T), want *ParseError", err, err)
			}
			if len(pe.Errors) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(pe.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				g := pe.Errors[i]
				if g.Line != w.line || g.Path != w.path || !strings.Contains(g.Message, w.msg) {
					t.Errorf("error %d = line %d %s %q, want line %d %s containing %q", i, g.Line, g.Path, g.Message, w.line, w.path, w.msg)
				}
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	t.Parallel()
	input := product("p1", variant("v1", "1.5")) + "\n" + `{"id":"p2","variants":[{"id":"v2","title":"T"}]}`
	_, err := Parse(strings.NewReader(input))
	want := "line 1: $.variants[0].price.amount: must be an integer number of minor units (1999 for 19.99), got 1.5\n" +
		"line 2: $.variants[0]: price is required: a variant without a price cannot be sold"
	if err == nil || err.Error() != want {
		t.Errorf("Error() =\n%v\nwant\n%s", err, want)
	}
}

func TestParseStopsAtMaxErrors(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 2 * MaxErrors {
		fmt.Fprintf(&b, "%s\n", product(fmt.Sprint("p", i), variant(fmt.Sprint("v", i), "-1")))
	}
	_, err := Parse(strings.NewReader(b.String()))
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("Parse error = %v, want *ParseError", err)
	}
	if len(pe.Errors) != MaxErrors || pe.Errors[MaxErrors-1].Line != MaxErrors {
		t.Errorf("got %d errors, the last on line %d; want %d, the last on line %d", len(pe.Errors), pe.Errors[len(pe.Errors)-1].Line, MaxErrors, MaxErrors)
	}
	if !strings.HasSuffix(err.Error(), "(stopped after 100 errors; there are more)") {
		t.Errorf("Error() does not say it stopped: ...%s", err.Error()[len(err.Error())-80:])
	}
}

func TestParseReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	_, err := Parse(iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Errorf("Parse error = %v, want it to wrap the read error", err)
	}
	var pe *ParseError
	if errors.As(err, &pe) {
		t.Errorf("a read error is not a ParseError")
	}
}

func TestDemoCatalog(t *testing.T) {
	t.Parallel()
	f, err := os.Open(demoFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	products, err := Parse(f)
	if err != nil {
		t.Fatalf("Parse(%s): %v", demoFile, err)
	}
	checkInvariants(t, products)
	byID := map[string]Variant{}
	for _, p := range products {
		for _, v := range p.Variants {
			byID[v.ID] = v
		}
	}
	tests := map[string]struct {
		amount      int64
		available   bool
		status      string
		fulfillment checkout.FulfillmentType
	}{
		"item_123":  {1500, true, "in_stock", checkout.FulfillmentShipping},
		"item_456":  {3000, true, "in_stock", checkout.FulfillmentShipping},
		"ebook_001": {999, true, "in_stock", checkout.FulfillmentDigital},
		"item_789":  {8900, false, "out_of_stock", checkout.FulfillmentShipping},
	}
	for id, want := range tests {
		v, ok := byID[id]
		if !ok {
			t.Errorf("demo catalog has no variant %s", id)
			continue
		}
		if v.PriceAmount != want.amount || v.Currency != "usd" || v.Available != want.available ||
			v.AvailabilityStatus != want.status || v.Fulfillment != want.fulfillment {
			t.Errorf("variant %s = %+v, want %+v in usd", id, v, want)
		}
	}
	if n := len(byID); n < 6 {
		t.Errorf("demo catalog has %d variants, want the four above and a couple more", n)
	}
}

// TestDemoCatalogMatchesFeedSchema keeps the demo honest: it must be a valid ACP feed, not
// just something this parser accepts.
func TestDemoCatalogMatchesFeedSchema(t *testing.T) {
	t.Parallel()
	const schemaFile = "2026-04-17/json-schema/schema.feed.json"
	raw := acpspec.ReadFile(t, schemaFile)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse %s: %v", schemaFile, err)
	}
	id, _ := doc.(map[string]any)["$id"].(string)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(id + "#/$defs/Product")
	if err != nil {
		t.Fatal(err)
	}

	lines := demoLines(t)
	for i, line := range lines {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
		if err != nil {
			t.Errorf("%s:%d: %v", demoFile, i+1, err)
			continue
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("%s:%d does not validate against $defs/Product: %v", demoFile, i+1, err)
		}
	}
	if len(lines) == 0 {
		t.Errorf("%s is empty", demoFile)
	}
}

// demoLines returns the non-blank lines of the demo catalog.
func demoLines(tb testing.TB) [][]byte {
	tb.Helper()
	data, err := os.ReadFile(demoFile)
	if err != nil {
		tb.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			lines = append(lines, bytes.Clone(sc.Bytes()))
		}
	}
	return lines
}

var lowerCurrency = regexp.MustCompile(`^[a-z]{3}$`)

// checkInvariants checks what Parse promises about the products it returns.
func checkInvariants(tb testing.TB, products []Product) {
	tb.Helper()
	if len(products) == 0 {
		tb.Error("no products without an error")
	}
	productIDs, variantIDs := map[string]bool{}, map[string]bool{}
	validID := func(kind, id string) {
		if id == "" || len(id) > MaxIDLength || strings.ContainsRune(id, 0) {
			tb.Errorf("invalid %s id %q", kind, id)
		}
	}
	for _, p := range products {
		validID("product", p.ID)
		if productIDs[p.ID] {
			tb.Errorf("duplicate product id %q", p.ID)
		}
		productIDs[p.ID] = true
		if len(p.Variants) == 0 {
			tb.Errorf("product %q has no variants", p.ID)
		}
		for _, v := range p.Variants {
			validID("variant", v.ID)
			if variantIDs[v.ID] {
				tb.Errorf("duplicate variant id %q", v.ID)
			}
			variantIDs[v.ID] = true
			if v.Title == "" {
				tb.Errorf("variant %q has no title", v.ID)
			}
			if v.PriceAmount < 0 || v.PriceAmount > MaxPriceAmount {
				tb.Errorf("variant %q price %d out of range", v.ID, v.PriceAmount)
			}
			if !lowerCurrency.MatchString(v.Currency) {
				tb.Errorf("variant %q currency %q", v.ID, v.Currency)
			}
			if v.AvailabilityStatus == "" {
				tb.Errorf("variant %q has no availability status", v.ID)
			}
			if v.Fulfillment != checkout.FulfillmentShipping && v.Fulfillment != checkout.FulfillmentDigital {
				tb.Errorf("variant %q fulfillment %q", v.ID, v.Fulfillment)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	lines := demoLines(f)
	for _, l := range lines {
		f.Add(l)
	}
	f.Add(bytes.Join(lines, []byte("\n")))
	f.Add(append(append([]byte("[\n"), bytes.Join(lines, []byte(",\n"))...), "\n]"...))
	f.Add(append(append([]byte(`{"products":[`), bytes.Join(lines, []byte(","))...), "]}"...))
	f.Add([]byte(product("p", variant("v", "1.5")) + "\n" + product("p", variant("v", "1"))))
	f.Add([]byte(`{"id":"p","variants":[{"id":"v","title":"T","price":{"amount":1,"currency":"USD"},"availability":{"status":"discontinued"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		products, err := Parse(bytes.NewReader(data))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || len(pe.Errors) == 0 || len(pe.Errors) > MaxErrors {
				t.Fatalf("Parse error %v (%T) is not a ParseError with 1..%d errors", err, err, MaxErrors)
			}
			if products != nil {
				t.Fatalf("Parse returned products with an error")
			}
			for _, le := range pe.Errors {
				if le.Line < 1 || le.Line > bytes.Count(data, []byte{'\n'})+1 || !strings.HasPrefix(le.Path, "$") {
					t.Fatalf("bad location in %+v", le)
				}
			}
			return
		}
		checkInvariants(t, products)
	})
}
