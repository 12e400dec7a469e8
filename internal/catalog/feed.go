package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The feed* types mirror the 2026-04-17 feed schema ($defs.Product and everything it
// references) field for field, including the fields this server does not store: the
// schema forbids additional properties everywhere, so a field missing here would make a
// valid feed fail, and a field typed json.RawMessage would let an invalid one through.
//
// The `feed` tag carries the constraints the checker enforces before decoding, since
// encoding/json cannot: "required" (the key must be present; `why` explains our own
// requirements), "id", "text", "nonempty", "currency", "minor", "nonneg" and "capped"; see
// checker.rule.

type feedProduct struct {
	ID          string           `json:"id" feed:"required,id"`
	Title       string           `json:"title" feed:"text"`
	Description *feedDescription `json:"description"`
	URL         string           `json:"url" feed:"text"`
	Media       []feedMedia      `json:"media"`
	Variants    []feedVariant    `json:"variants" feed:"required,nonempty" why:"a product without variants has nothing to sell"`
}

type feedVariant struct {
	ID             string              `json:"id" feed:"required,id"`
	Title          string              `json:"title" feed:"required,nonempty,text" why:"a checkout line shows it to the buyer"`
	Description    *feedDescription    `json:"description"`
	URL            string              `json:"url"`
	Barcodes       []feedBarcode       `json:"barcodes"`
	Price          *feedPrice          `json:"price" feed:"required" why:"a variant without a price cannot be sold"`
	ListPrice      *feedPrice          `json:"list_price"`
	UnitPrice      *feedUnitPrice      `json:"unit_price"`
	Availability   *feedAvailability   `json:"availability"`
	Categories     []feedCategory      `json:"categories"`
	Condition      []string            `json:"condition"`
	VariantOptions []feedVariantOption `json:"variant_options"`
	Media          []feedMedia         `json:"media"`
	Seller         *feedSeller         `json:"seller"`
	Marketplace    *feedSeller         `json:"marketplace"`
}

type feedDescription struct {
	Plain    string `json:"plain"`
	HTML     string `json:"html"`
	Markdown string `json:"markdown"`
}

// minProperties mirrors the schema's "minProperties": 1 on Description.
func (feedDescription) minProperties() int { return 1 }

type feedPrice struct {
	Amount   int64  `json:"amount" feed:"required,minor,nonneg,capped"`
	Currency string `json:"currency" feed:"required,currency"`
}

type feedUnitPrice struct {
	Amount    int64                `json:"amount" feed:"required,minor,nonneg"`
	Currency  string               `json:"currency" feed:"required,currency"`
	Measure   feedMeasure          `json:"measure" feed:"required"`
	Reference feedReferenceMeasure `json:"reference" feed:"required"`
}

type feedMeasure struct {
	Value float64 `json:"value" feed:"required"`
	Unit  string  `json:"unit" feed:"required"`
}

type feedReferenceMeasure struct {
	Value int64  `json:"value" feed:"required"`
	Unit  string `json:"unit" feed:"required"`
}

type feedAvailability struct {
	// Available is a pointer because absent and false mean different things.
	Available *bool  `json:"available"`
	Status    string `json:"status" feed:"text"`
}

type feedBarcode struct {
	Type  string `json:"type" feed:"required"`
	Value string `json:"value" feed:"required"`
}

type feedMedia struct {
	Type    string `json:"type" feed:"required"`
	URL     string `json:"url" feed:"required"`
	AltText string `json:"alt_text"`
	Width   int64  `json:"width"`
	Height  int64  `json:"height"`
}

type feedCategory struct {
	Value    string `json:"value" feed:"required"`
	Taxonomy string `json:"taxonomy"`
}

type feedVariantOption struct {
	Name  string `json:"name" feed:"required"`
	Value string `json:"value" feed:"required"`
}

type feedSeller struct {
	Name  string     `json:"name"`
	Links []feedLink `json:"links"`
}

type feedLink struct {
	Type  string `json:"type" feed:"required"`
	Title string `json:"title"`
	URL   string `json:"url" feed:"required"`
}

// pathError is a problem inside one product, before it is tied to a line.
type pathError struct {
	path, msg string
}

// checker walks a product decoded generically (numbers as json.Number) against the feed*
// types. It exists because encoding/json stops at the first problem, names unknown fields
// without saying where they are, drops array indexes from paths and silently accepts
// null; a merchant fixing a feed needs every problem with its exact location.
type checker struct {
	errs  []pathError
	limit int
}

func (c *checker) add(path, format string, args ...any) {
	if len(c.errs) < c.limit {
		c.errs = append(c.errs, pathError{path, fmt.Sprintf(format, args...)})
	}
}

// value checks that v, decoded generically, can be decoded into t.
func (c *checker) value(v any, t reflect.Type, path string) {
	if v == nil {
		c.add(path, "must not be null")
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		c.value(v, t.Elem(), path)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			c.add(path, "must be an object, got %s", describe(v))
			return
		}
		c.object(m, t, path)
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			c.add(path, "must be an array, got %s", describe(v))
			return
		}
		for i, e := range arr {
			c.value(e, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			c.add(path, "must be a string, got %s", describe(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			c.add(path, "must be true or false, got %s", describe(v))
		}
	case reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			c.add(path, "must be an integer, got %s", describe(v))
			return
		}
		if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
			if errors.Is(err, strconv.ErrRange) {
				c.add(path, "integer %s is out of range", clip(n))
			} else {
				c.add(path, "must be an integer, got %s", clip(n))
			}
		}
	case reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			c.add(path, "must be a number, got %s", describe(v))
			return
		}
		if _, err := strconv.ParseFloat(string(n), 64); err != nil {
			c.add(path, "number %s is out of range", clip(n))
		}
	default:
		// Only reachable if a feed* type gains a field of a kind the checker was not taught.
		c.add(path, "internal error: cannot check a %s", t)
	}
}

func (c *checker) object(m map[string]any, t reflect.Type, path string) {
	if mp, ok := reflect.Zero(t).Interface().(interface{ minProperties() int }); ok && len(m) < mp.minProperties() {
		c.add(path, "must have at least %d field(s)", mp.minProperties())
	}
	fields := fieldsOf(t)
	// Unknown fields first, in name order: map order is random and the report should not be.
	var unknown []string
	for k := range m {
		if !slices.ContainsFunc(fields, func(f field) bool { return f.name == k }) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		c.add(childPath(path, k), "unknown field %q: the feed schema does not allow it", k)
	}
	for _, f := range fields {
		v, present := m[f.name]
		if !present {
			if f.required {
				c.add(path, "%s is required%s", f.name, f.why)
			}
			continue
		}
		p := childPath(path, f.name)
		if n, ok := v.(json.Number); ok && slices.Contains(f.rules, "minor") && strings.ContainsAny(string(n), ".eE") {
			// The usual mistake is writing the price as a decimal; say what to write instead.
			c.add(p, "must be an integer number of minor units (1999 for 19.99), got %s", clip(n))
			continue
		}
		before := len(c.errs)
		c.value(v, f.typ, p)
		if len(c.errs) == before {
			for _, r := range f.rules {
				c.rule(r, f, v, p)
			}
		}
	}
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// rule applies one of the `feed` tag constraints to v, which already has the right type.
func (c *checker) rule(rule string, f field, v any, path string) {
	switch rule {
	case "id":
		s := v.(string)
		switch {
		case s == "":
			c.add(path, "must not be empty")
		case len(s) > MaxIDLength:
			c.add(path, "is %d bytes long, at most %d are allowed", len(s), MaxIDLength)
		case strings.ContainsRune(s, 0):
			c.add(path, "must not contain NUL characters (PostgreSQL text cannot store them)")
		}
	case "text":
		if strings.ContainsRune(v.(string), 0) {
			c.add(path, "must not contain NUL characters (PostgreSQL text cannot store them)")
		}
	case "nonempty":
		switch v := v.(type) {
		case string:
			if v == "" {
				c.add(path, "must not be empty%s", f.why)
			}
		case []any:
			if len(v) == 0 {
				c.add(path, "must not be empty%s", f.why)
			}
		}
	case "currency":
		if s := v.(string); !currencyPattern.MatchString(s) {
			c.add(path, "must be a three-letter upper-case ISO 4217 code such as \"USD\", got %q", s)
		}
	case "minor":
		// Checked in object, before the type check, for a better message.
	case "nonneg":
		if n, _ := strconv.ParseInt(string(v.(json.Number)), 10, 64); n < 0 {
			c.add(path, "must not be negative, got %d", n)
		}
	case "capped":
		if n, _ := strconv.ParseInt(string(v.(json.Number)), 10, 64); n > MaxPriceAmount {
			c.add(path, "must be at most %d minor units, got %d", int64(MaxPriceAmount), n)
		}
	default:
		panic("catalog: unknown feed tag rule " + strconv.Quote(rule))
	}
}

// field is what the checker needs to know about one struct field of a feed* type.
type field struct {
	name     string
	typ      reflect.Type
	required bool
	rules    []string
	why      string // ": reason", appended to "required"/"must not be empty" messages
}

var fieldCache sync.Map // reflect.Type -> []field

func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	fs := make([]field, 0, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		f := field{name: name, typ: sf.Type}
		if why := sf.Tag.Get("why"); why != "" {
			f.why = ": " + why
		}
		if tag := sf.Tag.Get("feed"); tag != "" {
			for r := range strings.SplitSeq(tag, ",") {
				if r == "required" {
					f.required = true
				} else {
					f.rules = append(f.rules, r)
				}
			}
		}
		fs = append(fs, f)
	}
	fieldCache.Store(t, fs)
	return fs
}

// describe names the JSON type of v for error messages, showing short scalars so the
// merchant can find them.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		if len(v) > 32 {
			return "a number"
		}
		return "number " + string(v)
	case string:
		if len(v) > 32 {
			return "a string"
		}
		return "string " + strconv.Quote(v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// clip shortens a number for an error message: a fuzzer or a broken export can produce
// thousands of digits, and the message only needs enough to find it.
func clip(n json.Number) string {
	if len(n) > 32 {
		return string(n[:32]) + "..."
	}
	return string(n)
}

// childPath extends a JSONPath, quoting names that dot notation cannot carry.
func childPath(path, name string) string {
	ident := name != ""
	for i, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			ident = false
			break
		}
	}
	if ident {
		return path + "." + name
	}
	return path + "[" + strconv.Quote(name) + "]"
}
