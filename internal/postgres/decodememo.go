package postgres

import (
	"encoding/json"
	"slices"
	"sync"

	"github.com/agentic-commerce/agentic-commerce-server/db"
)

// decodeMemo remembers what JSON texts decoded to, keyed by the text itself, so it can
// never serve a stale value: a changed row is a new text. It is for the catalog's sets
// that the views read (GetSessionView, GetCatalogFor) on every create, update,
// completion and GET: the active fulfillment options come back byte for byte the same
// for every session, and so do a product's variants between changes of its row, while
// encoding/json spent about 5% of the server's CPU in the full flow decoding them
// (docs/performance-history.md, "Fifth round"). The zero value is not usable; see newDecodeMemo.
type decodeMemo[T any] struct {
	// clone copies a remembered value for a caller, which may then change it.
	clone func(T) T

	mu      sync.RWMutex
	decoded map[string]T
}

// Bounds of a decodeMemo. The texts of a catalog's sets are a few hundred bytes, and
// the distinct ones in use at a time are the fulfillment options and the variant sets
// of the carts being checked out; a larger text (a cart of many items) is decoded
// every time, and a full memo is emptied, so it holds at most decodeMemoEntries ×
// decodeMemoMaxText bytes of text.
const (
	decodeMemoEntries = 128
	decodeMemoMaxText = 4 << 10
)

func newDecodeMemo[T any](clone func(T) T) *decodeMemo[T] {
	return &decodeMemo[T]{clone: clone, decoded: make(map[string]T)}
}

// column is jsonColumn through the memo: raw decoded into *into (left as it is for SQL
// NULL), by json.Unmarshal the first time and by a copy of that value after.
func (m *decodeMemo[T]) column(raw []byte, into *T, what string) column {
	return column{raw: raw, what: what, decode: func(b []byte) error { return m.decode(b, into) }}
}

func (m *decodeMemo[T]) decode(raw []byte, into *T) error {
	if len(raw) > decodeMemoMaxText {
		return json.Unmarshal(raw, into)
	}
	m.mu.RLock()
	v, ok := m.decoded[string(raw)]
	m.mu.RUnlock()
	if !ok {
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		m.mu.Lock()
		if len(m.decoded) >= decodeMemoEntries {
			clear(m.decoded)
		}
		m.decoded[string(raw)] = v
		m.mu.Unlock()
	}
	*into = m.clone(v)
	return nil
}

// The memos of the catalog's sets, shared by every Store of the process: what a text
// decodes to does not depend on the database it came from.
var (
	variantsDecoded = newDecodeMemo(func(vs []db.Variant) []db.Variant {
		vs = slices.Clone(vs)
		for i := range vs {
			vs[i].StockQuantity = clonePtr(vs[i].StockQuantity)
		}
		return vs
	})
	optionsDecoded = newDecodeMemo(func(opts []db.FulfillmentOption) []db.FulfillmentOption {
		opts = slices.Clone(opts)
		for i := range opts {
			opts[i].MinDeliveryDays = clonePtr(opts[i].MinDeliveryDays)
			opts[i].MaxDeliveryDays = clonePtr(opts[i].MaxDeliveryDays)
		}
		return opts
	})
)

// clonePtr is a pointer to a copy of *p, or nil.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
