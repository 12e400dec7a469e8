package acp

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// The key check of DecodeStrict. encoding/json matches object keys to struct fields
// ignoring case ("ITEMS" fills items) and keeps the last of duplicate keys, and its
// unknown-field error names the key but not where it sits. A parser must be stricter, so
// before the struct decode one pass over the body's tokens refuses
//
//   - a key an object already has (duplicate_field), in any object of the body, and
//   - a key that is not exactly the json name of a field of the struct at that place
//     (unknown_field), maps taking any key,
//
// each with param = the JSONPath of the key.

// maxDepth is the nesting encoding/json refuses beyond; the walk stops there too, so
// its stack stays small whatever the body.
const maxDepth = 10000

// shape is what the object keys of a JSON value must be for a Go type. A nil *shape
// allows any keys (interfaces, scalars, types with their own UnmarshalJSON); their
// objects are still checked for duplicates.
type shape struct {
	fields map[string]*shape // a struct: its json names and their shapes
	elem   *shape            // a map's values or a slice's or array's elements
	isMap  bool
}

// child is the shape of the value under key in an object of shape s.
func (s *shape) child(key string) *shape {
	if s == nil {
		return nil
	}
	if s.fields != nil {
		return s.fields[key]
	}
	return s.elem
}

type rootShape struct{ s *shape }

// shapes caches the shape of each DecodeStrict target type: reflection runs once per type.
var shapes sync.Map // reflect.Type → rootShape

func shapeFor(t reflect.Type) *shape {
	if cached, ok := shapes.Load(t); ok {
		return cached.(rootShape).s
	}
	s := buildShape(t, map[reflect.Type]*shape{})
	shapes.Store(t, rootShape{s})
	return s
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// buildShape follows encoding/json: pointers are looked through, a type that decodes
// itself is taken as it is, and building records each struct before its fields so that
// recursive types end.
func buildShape(t reflect.Type, building map[reflect.Type]*shape) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if pt := reflect.PointerTo(t); pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler) {
		return nil
	}
	if s, ok := building[t]; ok {
		return s
	}
	switch t.Kind() {
	case reflect.Struct:
		s := &shape{fields: map[string]*shape{}}
		building[t] = s
		addFields(s.fields, t, building)
		return s
	case reflect.Map:
		s := &shape{isMap: true}
		building[t] = s
		s.elem = buildShape(t.Elem(), building)
		return s
	case reflect.Slice, reflect.Array:
		elem := buildShape(t.Elem(), building)
		if elem == nil {
			return nil
		}
		return &shape{elem: elem}
	}
	return nil
}

// addFields adds the json names of struct t's fields: its own first, then those
// promoted from embedded structs without a tag name, which the own fields hide.
func addFields(fields map[string]*shape, t reflect.Type, building map[reflect.Type]*shape) {
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = buildShape(f.Type, building)
	}
	for _, et := range embedded {
		promoted := map[string]*shape{}
		addFields(promoted, et, building)
		for name, s := range promoted {
			if _, hidden := fields[name]; !hidden {
				fields[name] = s
			}
		}
	}
}

// frame is an object or array being walked.
type frame struct {
	s       *shape
	object  bool
	wantKey bool     // an object expecting a key (or its end)
	key     string   // an object's current key
	index   int      // an array's current element
	seen    []string // an object's keys so far; seenSet takes over past a few
	seenSet map[string]struct{}
}

const seenLinear = 16

// repeats records key in f and reports whether f already had it.
func (f *frame) repeats(key string) bool {
	if f.seenSet != nil {
		if _, ok := f.seenSet[key]; ok {
			return true
		}
		f.seenSet[key] = struct{}{}
		return false
	}
	for _, k := range f.seen {
		if k == key {
			return true
		}
	}
	f.seen = append(f.seen, key)
	if len(f.seen) > seenLinear {
		f.seenSet = make(map[string]struct{}, 2*len(f.seen))
		for _, k := range f.seen {
			f.seenSet[k] = struct{}{}
		}
		f.seen = nil
	}
	return false
}

// checkKeys walks the one JSON value at the start of body against the shape of t. It
// returns the first key problem, or the syntax error when the JSON is not well formed
// (which then wins, as the struct decode would report it), and nil otherwise.
func checkKeys(body []byte, t reflect.Type) error {
	root := shapeFor(t)
	if keysClean(body, root) {
		return nil
	}
	return walkKeys(body, root)
}

// walkKeys is checkKeys token by token: it finds and names every problem.
func walkKeys(body []byte, root *shape) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers are not looked at; this skips parsing them
	var stack []frame
	var problem error
	for {
		tok, err := dec.Token()
		if err != nil {
			return decodeError(err)
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			top := &stack[n-1]
			if key, ok := tok.(string); ok {
				top.key, top.wantKey = key, false
				if problem == nil {
					problem = checkKey(stack, top, key)
				}
				continue
			}
			// '}'
			stack = stack[:n-1]
		} else if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
			if len(stack) >= maxDepth {
				return InvalidRequest("invalid_json", fmt.Sprintf("The request body is nested deeper than %d levels.", maxDepth), "")
			}
			s := root
			if n > 0 {
				if top := &stack[n-1]; top.object {
					s = top.s.child(top.key)
				} else {
					s = top.s.child("")
				}
			}
			stack = append(stack, frame{s: s, object: d == '{', wantKey: d == '{'})
			continue
		} else if ok && d == ']' {
			stack = stack[:n-1]
		}
		// A value ended: a scalar, or the object or array just popped.
		if len(stack) == 0 {
			return problem
		}
		if top := &stack[len(stack)-1]; top.object {
			top.wantKey = true
		} else {
			top.index++
		}
	}
}

// checkKey checks the key just read into top, the last frame of stack.
func checkKey(stack []frame, top *frame, key string) error {
	if top.repeats(key) {
		return InvalidRequest("duplicate_field", fmt.Sprintf("Duplicate field %q: an object must not repeat a name.", key), keyPath(stack))
	}
	if top.s == nil || top.s.fields == nil {
		return nil
	}
	if _, ok := top.s.fields[key]; ok {
		return nil
	}
	for name := range top.s.fields {
		if strings.EqualFold(name, key) {
			return InvalidRequest("unknown_field", fmt.Sprintf("Unknown field %q: field names are case-sensitive (did you mean %q?).", key, name), keyPath(stack))
		}
	}
	return InvalidRequest("unknown_field", fmt.Sprintf("Unknown field %q.", key), keyPath(stack))
}

// keyPath is the JSONPath of the current key of the last frame of stack, in the
// normalized form of RFC 9535 except that names that can be are written with a dot.
func keyPath(stack []frame) string {
	var b strings.Builder
	b.WriteString("$")
	for _, f := range stack {
		if !f.object {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
			continue
		}
		if isShorthandName(f.key) {
			b.WriteString("." + f.key)
			continue
		}
		b.WriteString("['")
		for _, r := range f.key {
			switch {
			case r == '\'' || r == '\\':
				b.WriteString(`\` + string(r))
			case r < 0x20:
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteString("']")
	}
	return b.String()
}

// isShorthandName reports whether name can follow a dot in a JSONPath: ASCII letters,
// digits and underscores, not starting with a digit.
func isShorthandName(name string) bool {
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
