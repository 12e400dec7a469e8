// Package catalog reads the merchant's product feed, the file that
// `agentic-commerce-server catalog import FILE` loads, and turns it into the products and
// variants a checkout sells. It only parses and validates; storing is done elsewhere.
//
// The feed is the ACP product feed, feed schema 2026-04-17: each product is a $defs.Product
// of schema.feed.json. A file holds them in one of three forms, told apart by its first
// non-space byte:
//
//   - JSON Lines: one Product per line; blank lines are ignored.
//   - a JSON array of Product (first byte "[").
//   - an UpsertProductsRequest, {"products": [...]}, when the whole file is that one object.
//
// Every product is checked as strictly as the schema allows (unknown fields, nulls and wrong
// types are errors, since the schema forbids additional properties everywhere), plus what
// a checkout needs that the schema leaves optional: every variant must have a price, ids
// must be non-empty, at most 256 bytes and unique across the file (variant ids are the
// checkout item ids), amounts must be whole minor units no larger than 100000000000, a
// product must have at least one variant and a variant a non-empty title. A file with any
// problem is rejected as a whole, with every problem reported by line, so that an import
// never loads half a catalog.
//
// Digital goods: the feed schema has no field that says a variant is delivered
// digitally, so this server reads it from a category. A variant is digital when its
// categories contain {"taxonomy": "fulfillment", "value": "digital"} (both compared
// case-insensitively); every other variant is shipped. For example:
//
//	"categories": [{"taxonomy": "fulfillment", "value": "digital"}]
//
// Availability: a variant without "availability" is available ("in_stock"). When only
// "status" is given, out_of_stock and discontinued make it unavailable and any other
// status (in_stock, limited_stock, backorder, preorder or one the schema does not list
// yet) leaves it available; when only "available" is given the status defaults to in_stock
// or out_of_stock to match.
//
// A demo catalog that parses cleanly and validates against the feed schema is in
// internal/catalog/demo/products.jsonl.
package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// Limits a feed must stay within. The price cap keeps price × quantity × lines far inside
// int64 and matches the CHECK on variants.price_amount; the id limit matches the CHECKs on
// the id columns.
const (
	MaxPriceAmount = 100_000_000_000
	MaxIDLength    = 256
	// MaxErrors bounds a ParseError: past a hundred problems the file is more likely the
	// wrong file than a file to fix line by line.
	MaxErrors = 100
)

// Product is a feed product as the catalog stores it: a grouping of variants with a title
// and a page to link to.
type Product struct {
	ID    string
	Title string
	// URL is "" when the feed gives none.
	URL      string
	Variants []Variant
}

// Variant is a purchasable variant; its ID is the item id agents put in a checkout.
type Variant struct {
	ID    string
	Title string
	// PriceAmount is in minor units of Currency; money is never a float.
	PriceAmount int64
	// Currency is lower-case ISO 4217 ("usd"), the form checkout uses, while the feed
	// writes it upper-case.
	Currency string
	// Available says whether the variant may be bought now.
	Available bool
	// AvailabilityStatus is the feed's availability.status as given, or the default that
	// matches Available ("in_stock" / "out_of_stock") when the feed has none.
	AvailabilityStatus string
	// Fulfillment is digital for variants in the fulfillment/digital category, shipping
	// otherwise (see the package documentation).
	Fulfillment checkout.FulfillmentType
}

// LineError is one problem in a feed, located so the merchant can find it: Line is the
// 1-based line where the product concerned starts (for a JSON array, the line where that
// element starts) and Path is a JSONPath into that product ("$.variants[0].price"). Problems
// with the file as a whole use Path "$".
type LineError struct {
	Line    int
	Path    string
	Message string
}

// ParseError is returned for a feed with problems. It lists all of them, up to MaxErrors,
// so that one import run is enough to see what to fix.
type ParseError struct {
	Errors []LineError
	// truncated records that problems past MaxErrors were dropped, so Error can say so.
	truncated bool
}

// Error prints one "line N: path: message" per problem, ready to show to the merchant.
func (e *ParseError) Error() string {
	if len(e.Errors) == 0 {
		return "catalog: invalid feed"
	}
	var b strings.Builder
	for i, le := range e.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "line %d: %s: %s", le.Line, le.Path, le.Message)
	}
	if e.truncated {
		fmt.Fprintf(&b, "\n(stopped after %d errors; there are more)", MaxErrors)
	}
	return b.String()
}

// Parse reads a whole feed and returns its products in file order. A feed with any
// problem returns a *ParseError and no products: an import must not load part of a
// catalog. Other errors come from reading r.
func Parse(r io.Reader) ([]Product, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("catalog: reading feed: %w", err)
	}
	p := newParser(data)
	p.run()
	if len(p.errs) > 0 {
		return nil, &ParseError{Errors: p.errs, truncated: p.truncated}
	}
	if len(p.products) == 0 {
		return nil, &ParseError{Errors: []LineError{{Line: 1, Path: "$", Message: "no products: the feed is empty"}}}
	}
	return p.products, nil
}

type parser struct {
	data      []byte
	newlines  []int // offsets of every '\n', to turn offsets into line numbers
	products  []Product
	errs      []LineError
	truncated bool

	productLine map[string]int      // product id -> line of its first occurrence
	variantAt   map[string]location // variant id -> its first occurrence
}

type location struct {
	line int
	path string
}

func newParser(data []byte) *parser {
	// Editors on Windows like to start UTF-8 files with a byte order mark, which is not JSON.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	p := &parser{data: data, productLine: map[string]int{}, variantAt: map[string]location{}}
	for i, c := range data {
		if c == '\n' {
			p.newlines = append(p.newlines, i)
		}
	}
	return p
}

func (p *parser) run() {
	i := skipSpace(p.data, 0)
	if i == len(p.data) {
		return
	}
	switch {
	case p.data[i] == '[':
		p.array()
	case p.data[i] == '{' && p.isUpsertRequest():
		p.upsertRequest()
	default:
		p.jsonLines()
	}
}

func (p *parser) add(line int, path, format string, args ...any) {
	if len(p.errs) >= MaxErrors {
		p.truncated = true
		return
	}
	p.errs = append(p.errs, LineError{Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

// lineOf turns a byte offset into p.data into a 1-based line number.
func (p *parser) lineOf(off int) int {
	return sort.SearchInts(p.newlines, off) + 1
}

func (p *parser) jsonLines() {
	rest := p.data
	for line := 1; len(rest) > 0 && !p.truncated; line++ {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if skipSpace(l, 0) < len(l) {
			p.product(l, line)
		}
	}
}

func (p *parser) array() {
	dec := json.NewDecoder(bytes.NewReader(p.data))
	if _, err := dec.Token(); err != nil {
		p.syntaxError(err)
		return
	}
	if !p.elements(dec) {
		return
	}
	if i := skipSpace(p.data, int(dec.InputOffset())); i < len(p.data) {
		p.add(p.lineOf(i), "$", "unexpected data after the JSON array: a feed holds one array of products")
	}
}

// elements parses the products of an array whose "[" dec has just read, through its "]".
// It reports false when the array is malformed, since nothing after a syntax error can be
// trusted.
func (p *parser) elements(dec *json.Decoder) bool {
	for dec.More() {
		start := skipSpace(p.data, int(dec.InputOffset()))
		if start < len(p.data) && p.data[start] == ',' {
			start = skipSpace(p.data, start+1)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			p.syntaxError(err)
			return false
		}
		p.product(raw, p.lineOf(start))
		if p.truncated {
			return false
		}
	}
	if _, err := dec.Token(); err != nil {
		p.syntaxError(err)
		return false
	}
	return true
}

// isUpsertRequest tells an UpsertProductsRequest from JSON Lines, which also starts with
// "{": only the former is one JSON value with a "products" key filling the whole file.
func (p *parser) isUpsertRequest() bool {
	dec := json.NewDecoder(bytes.NewReader(p.data))
	var probe map[string]json.RawMessage
	if err := dec.Decode(&probe); err != nil {
		return false
	}
	_, ok := probe["products"]
	return ok && skipSpace(p.data, int(dec.InputOffset())) == len(p.data)
}

// upsertRequest parses a file that isUpsertRequest accepted, so it is well-formed JSON.
func (p *parser) upsertRequest() {
	dec := json.NewDecoder(bytes.NewReader(p.data))
	if _, err := dec.Token(); err != nil {
		p.syntaxError(err)
		return
	}
	seen := false
	for dec.More() && !p.truncated {
		keyStart := skipSpace(p.data, int(dec.InputOffset()))
		if keyStart < len(p.data) && p.data[keyStart] == ',' {
			keyStart = skipSpace(p.data, keyStart+1)
		}
		tok, err := dec.Token()
		if err != nil {
			p.syntaxError(err)
			return
		}
		key, _ := tok.(string)
		valueStart := skipSpace(p.data, int(dec.InputOffset()))
		if valueStart < len(p.data) && p.data[valueStart] == ':' {
			valueStart = skipSpace(p.data, valueStart+1)
		}
		if key == "products" && !seen && valueStart < len(p.data) && p.data[valueStart] == '[' {
			seen = true
			if _, err := dec.Token(); err != nil {
				p.syntaxError(err)
				return
			}
			if !p.elements(dec) {
				return
			}
			continue
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			p.syntaxError(err)
			return
		}
		switch {
		case key != "products":
			p.add(p.lineOf(keyStart), childPath("$", key), "unknown field %q: an UpsertProductsRequest has only \"products\"", key)
		case seen:
			p.add(p.lineOf(keyStart), "$.products", "duplicate field \"products\"")
		default:
			seen = true
			p.add(p.lineOf(valueStart), "$.products", "must be an array of products, got %s", describe(decodeGeneric(raw)))
		}
	}
}

// syntaxError reports malformed JSON in an array or UpsertProductsRequest. The decoder's
// own error has no reliable position, so the file is scanned again for one.
func (p *parser) syntaxError(err error) {
	var raw json.RawMessage
	var se *json.SyntaxError
	if errors.As(json.Unmarshal(p.data, &raw), &se) {
		p.add(p.lineOf(max(int(se.Offset)-1, 0)), "$", "invalid JSON: %s", se.Error())
		return
	}
	p.add(p.lineOf(len(p.data)), "$", "invalid JSON: %s", err)
}

var productType = reflect.TypeFor[feedProduct]()

// product checks and converts one product, found at line.
func (p *parser) product(raw []byte, line int) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		var rm json.RawMessage
		var se *json.SyntaxError
		if errors.As(json.Unmarshal(raw, &rm), &se) {
			p.add(line, "$", "invalid JSON at byte %d of the line: %s", se.Offset, se.Error())
		} else {
			p.add(line, "$", "invalid JSON: %s", err)
		}
		return
	}
	if i := skipSpace(raw, int(dec.InputOffset())); i < len(raw) {
		p.add(line, "$", "unexpected data at byte %d of the line, after the product: JSON Lines has one product per line", i+1)
		return
	}
	m, ok := tree.(map[string]any)
	if !ok {
		p.add(line, "$", "a product must be a JSON object, got %s", describe(tree))
		return
	}

	c := checker{limit: MaxErrors + 1}
	c.object(m, productType, "$")
	for _, e := range c.errs {
		p.add(line, e.path, "%s", e.msg)
	}
	if !p.uniqueIDs(m, line) || len(c.errs) > 0 {
		return
	}

	// The checker has vetted every field; the strict decode stays as a backstop so that a
	// gap in the checker can never let an unknown field or a wrong type through.
	var fp feedProduct
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	if err := strict.Decode(&fp); err != nil {
		p.add(line, "$", "%s", err)
		return
	}
	p.products = append(p.products, convert(fp))
}

// uniqueIDs records the product's and its variants' ids and reports any seen before. It
// works on the generic tree so that a product with other problems still claims its ids:
// otherwise fixing one line could surface a duplicate that the first run did not show.
func (p *parser) uniqueIDs(m map[string]any, line int) bool {
	ok := true
	if id, _ := m["id"].(string); id != "" {
		if first, dup := p.productLine[id]; dup {
			p.add(line, "$.id", "duplicate product id %q: already used on line %d", id, first)
			ok = false
		} else {
			p.productLine[id] = line
		}
	}
	variants, _ := m["variants"].([]any)
	for i, v := range variants {
		vm, _ := v.(map[string]any)
		id, _ := vm["id"].(string)
		if id == "" {
			continue
		}
		path := fmt.Sprintf("$.variants[%d].id", i)
		if first, dup := p.variantAt[id]; dup {
			p.add(line, path, "duplicate variant id %q: already used on line %d at %s", id, first.line, first.path)
			ok = false
		} else {
			p.variantAt[id] = location{line, path}
		}
	}
	return ok
}

func convert(fp feedProduct) Product {
	out := Product{ID: fp.ID, Title: fp.Title, URL: fp.URL, Variants: make([]Variant, 0, len(fp.Variants))}
	if out.Title == "" {
		out.Title = fp.Variants[0].Title
	}
	for _, fv := range fp.Variants {
		available, status := availability(fv.Availability)
		fulfillment := checkout.FulfillmentShipping
		if isDigital(fv.Categories) {
			fulfillment = checkout.FulfillmentDigital
		}
		out.Variants = append(out.Variants, Variant{
			ID:                 fv.ID,
			Title:              fv.Title,
			PriceAmount:        fv.Price.Amount,
			Currency:           strings.ToLower(fv.Price.Currency),
			Available:          available,
			AvailabilityStatus: status,
			Fulfillment:        fulfillment,
		})
	}
	return out
}

func availability(a *feedAvailability) (available bool, status string) {
	if a == nil {
		return true, "in_stock"
	}
	available, status = true, a.Status
	switch {
	case a.Available != nil:
		available = *a.Available
	case status != "":
		// Unknown statuses count as available: the schema calls status extensible, and only
		// these two are known to mean the variant cannot be bought.
		available = !strings.EqualFold(status, "out_of_stock") && !strings.EqualFold(status, "discontinued")
	}
	if status == "" {
		status = "in_stock"
		if !available {
			status = "out_of_stock"
		}
	}
	return available, status
}

func isDigital(categories []feedCategory) bool {
	for _, c := range categories {
		if strings.EqualFold(c.Taxonomy, "fulfillment") && strings.EqualFold(c.Value, "digital") {
			return true
		}
	}
	return false
}

// decodeGeneric decodes raw the way the checker sees values, for describing them.
func decodeGeneric(raw []byte) any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	_ = dec.Decode(&v) // raw comes from a decoder, so it is valid JSON
	return v
}

// skipSpace returns the offset of the first byte at or after i that is not JSON
// whitespace, or len(b).
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
