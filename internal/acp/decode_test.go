package acp

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

type testItem struct {
	ID       *string         `json:"id"`
	Quantity json.RawMessage `json:"quantity"`
}

type testCard struct {
	Number   *string           `json:"number"`
	CVC      string            `json:"cvc"`
	Metadata map[string]string `json:"metadata"`
}

type testBase struct {
	Note string `json:"note"`
	Hide string `json:"hidden_by_outer"`
}

type testRequest struct {
	testBase
	Items         *[]testItem                `json:"items"`
	PaymentMethod *testCard                  `json:"payment_method"`
	Meta          *map[string]testItem       `json:"meta"`
	Free          any                        `json:"free"`
	Nested        [][]testItem               `json:"nested"`
	Skipped       string                     `json:"-"`
	Untagged      string                     // no tag: the Go name is the json name
	HiddenByOuter int                        `json:"hidden_by_outer"`
	Self          *testRequest               `json:"self"`
	Raw           map[string]json.RawMessage `json:"raw"`
}

func decodeErr(t *testing.T, body string) *Error {
	t.Helper()
	var req testRequest
	err := DecodeStrict([]byte(body), &req)
	if err == nil {
		return nil
	}
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("%s: error %T %v is not an *Error", body, err, err)
	}
	return ae
}

func TestDecodeStrictRefusesKeys(t *testing.T) {
	cases := []struct{ name, body, code, param string }{
		{"duplicate top-level", `{"items":[],"items":[]}`, "duplicate_field", "$.items"},
		{"duplicate nested", `{"payment_method":{"number":"1","cvc":"2","cvc":"3"}}`, "duplicate_field", "$.payment_method.cvc"},
		{"duplicate in an array element", `{"items":[{"id":"a"},{"id":"b","id":"c"}]}`, "duplicate_field", "$.items[1].id"},
		{"duplicate in a map", `{"payment_method":{"metadata":{"k":"a","k":"b"}}}`, "duplicate_field", "$.payment_method.metadata.k"},
		{"duplicate in a free value", `{"free":{"a":[{"b":1,"b":2}]}}`, "duplicate_field", "$.free.a[0].b"},
		{"duplicate in a raw value", `{"items":[{"id":"a","quantity":{"x":1,"x":1}}]}`, "duplicate_field", "$.items[0].quantity.x"},
		{"duplicate past the linear set", `{"free":{` + manyKeys(40) + `,"k7":0}}`, "duplicate_field", "$.free.k7"},
		{"duplicate with an odd name", `{"raw":{"a'b c":1,"a'b c":2}}`, "duplicate_field", `$.raw['a\'b c']`},
		{"upper-case name", `{"ITEMS":[]}`, "unknown_field", "$.ITEMS"},
		{"title-case name", `{"Items":[]}`, "unknown_field", "$.Items"},
		{"both spellings", `{"items":[{"id":"a"}],"ITEMS":[]}`, "unknown_field", "$.ITEMS"},
		{"upper-case nested", `{"payment_method":{"NUMBER":"4242424242424242"}}`, "unknown_field", "$.payment_method.NUMBER"},
		{"upper-case in an array element", `{"items":[{"id":"a"},{"ID":"b"}]}`, "unknown_field", "$.items[1].ID"},
		{"unknown top-level", `{"coupon":"X"}`, "unknown_field", "$.coupon"},
		{"unknown nested", `{"items":[{"id":"a","color":"red"}]}`, "unknown_field", "$.items[0].color"},
		{"unknown in an array of arrays", `{"nested":[[],[{"id":"a"},{"x":1}]]}`, "unknown_field", "$.nested[1][1].x"},
		{"unknown in a map value", `{"meta":{"a b":{"id":"x","y":1}}}`, "unknown_field", "$.meta['a b'].y"},
		{"unknown in a recursive type", `{"self":{"self":{"Items":[]}}}`, "unknown_field", "$.self.self.Items"},
		{"skipped field", `{"Skipped":"x"}`, "unknown_field", "$.Skipped"},
		{"untagged in lower case", `{"untagged":"x"}`, "unknown_field", "$.untagged"},
		{"embedded in upper case", `{"NOTE":"x"}`, "unknown_field", "$.NOTE"},
		// Order: the first problem in the body is reported.
		{"unknown before duplicate", `{"x":1,"items":[],"items":[]}`, "unknown_field", "$.x"},
		// Not well-formed JSON wins over a key problem, as the struct decode would say.
		{"truncated after a bad key", `{"ITEMS":[`, "invalid_json", ""},
		{"syntax error after a duplicate", `{"items":[],"items":[}`, "invalid_json", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ae := decodeErr(t, tc.body)
			if ae == nil {
				t.Fatalf("%s was accepted", tc.body)
			}
			if ae.Status != 400 || ae.Type != TypeInvalidRequest || ae.Code != tc.code || ae.Param != tc.param {
				t.Errorf("%s: got %d %s %s param %q (%s), want %s param %q", tc.body, ae.Status, ae.Type, ae.Code, ae.Param, ae.Message, tc.code, tc.param)
			}
		})
	}
}

func manyKeys(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = `"k` + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + `":0`
	}
	keys[7] = `"k7":0`
	return strings.Join(keys, ",")
}

func TestDecodeStrictCaseHint(t *testing.T) {
	ae := decodeErr(t, `{"payment_method":{"Cvc":"123"}}`)
	if ae == nil || !strings.Contains(ae.Message, `did you mean "cvc"`) {
		t.Errorf("message does not name the right spelling: %v", ae)
	}
	if strings.Contains(ae.Message, "123") {
		t.Errorf("message echoes the value: %s", ae.Message)
	}
}

func TestDecodeStrictAcceptsExactNames(t *testing.T) {
	body := `{"items":[{"id":"a","quantity":2},{"id":"b","quantity":"x"}],
		"payment_method":{"number":"4242","cvc":"1","metadata":{"ANY":"1","any":"2","Any Key":"3"}},
		"meta":{"X":{"id":"m"},"x":{"id":"n"}},
		"free":{"Whatever":[{"a":1},{"a":1}],"whatever":null},
		"nested":[[{"id":"p"}]], "Untagged":"u", "note":"n", "hidden_by_outer":3,
		"self":{"items":[]}, "raw":{"A":{"b":[1,{"c":2}]},"a":"x"}}`
	var req testRequest
	if err := DecodeStrict([]byte(body), &req); err != nil {
		t.Fatalf("a valid body was refused: %v", err)
	}
	if len(*req.Items) != 2 || *(*req.Items)[1].ID != "b" || *req.PaymentMethod.Number != "4242" ||
		req.PaymentMethod.Metadata["Any Key"] != "3" || (*req.Meta)["x"].ID == nil || req.Untagged != "u" ||
		req.Note != "n" || req.HiddenByOuter != 3 || req.Self.Items == nil || len(req.Raw) != 2 {
		t.Errorf("decoded %+v", req)
	}
}

func TestDecodeStrictKeepsOtherRefusals(t *testing.T) {
	cases := []struct{ body, code string }{
		{`{"items":"x"}`, "invalid_type"},
		{`{"items":[]} {}`, "invalid_json"},
		{`{"items":`, "invalid_json"},
		{`[]`, "invalid_type"},
		{`{"free":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`, "invalid_json"},
	}
	for _, tc := range cases {
		if ae := decodeErr(t, tc.body); ae == nil || ae.Code != tc.code {
			t.Errorf("%.40s: got %v, want %s", tc.body, ae, tc.code)
		}
	}
}

func TestShapeIsCachedPerType(t *testing.T) {
	var req testRequest
	if err := DecodeStrict([]byte(`{}`), &req); err != nil {
		t.Fatal(err)
	}
	cached, ok := shapes.Load(typeOfTestRequest)
	if !ok || cached.(rootShape).s == nil || cached.(rootShape).s.fields["items"] == nil {
		t.Fatalf("no cached shape for %v", typeOfTestRequest)
	}
}

var typeOfTestRequest = reflect.TypeOf(&testRequest{})

func BenchmarkDecodeStrict(b *testing.B) {
	body := []byte(`{"items":[{"id":"a","quantity":2},{"id":"b","quantity":3}],"payment_method":{"number":"4242424242424242","cvc":"123","metadata":{"a":"b"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		var req testRequest
		if err := DecodeStrict(body, &req); err != nil {
			b.Fatal(err)
		}
	}
}
