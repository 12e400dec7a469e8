package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// The decoder is strict the way a parser must be: field names are case-sensitive and
// duplicate keys are refused, each with the key's JSONPath as param, and a refused
// request writes nothing.
func TestStrictDecodingRefusesCaseVariantsAndDuplicates(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	item := `[{"id":"item_123","quantity":1}]`
	for _, tc := range []struct{ name, body, code, param string }{
		{"ITEMS beside items", `{"items":` + item + `,"ITEMS":` + item + `}`, "unknown_field", "$.ITEMS"},
		{"Items alone", `{"Items":` + item + `}`, "unknown_field", "$.Items"},
		{"item ID", `{"items":[{"id":"item_123","quantity":1},{"ID":"item_123","quantity":1}]}`, "unknown_field", "$.items[1].ID"},
		{"items twice", `{"items":` + item + `,"items":[{"id":"item_123","quantity":2}]}`, "duplicate_field", "$.items"},
		{"buyer email twice", `{"items":` + item + `,"buyer":{"first_name":"A","last_name":"B","email":"a@b.co","email":"c@d.co"}}`, "duplicate_field", "$.buyer.email"},
	} {
		e.mustError(e.do(http.MethodPost, "/checkout_sessions", tc.body), http.StatusBadRequest, tc.code, tc.param)
	}
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 0 {
		t.Errorf("refused creates wrote %d sessions", n)
	}

	raw, err := json.Marshal(delegateBody("cs_strict", 2109, "usd", visaNumber, "9871"))
	if err != nil {
		t.Fatal(err)
	}
	valid := string(raw)
	for _, tc := range []struct{ name, body, code, param string }{
		{"NUMBER", strings.Replace(valid, `"number":`, `"NUMBER":`, 1), "unknown_field", "$.payment_method.NUMBER"},
		{"number twice", strings.Replace(valid, `"number":`, `"number":"4000056655665556","number":`, 1), "duplicate_field", "$.payment_method.number"},
	} {
		if tc.body == valid {
			t.Fatalf("%s: the body was not changed", tc.name)
		}
		r := e.do(http.MethodPost, delegatePath, tc.body)
		e.mustDelegateRefusal(r, http.StatusBadRequest, tc.code, tc.param)
		if strings.Contains(string(r.body), visaNumber) {
			t.Errorf("%s: the error echoes the card number: %s", tc.name, r.body)
		}
	}
	if n := dbInt(e, `SELECT count(*) FROM vault_tokens`); n != 0 {
		t.Errorf("refused delegations stored %d tokens", n)
	}
	// The exact spelling is served.
	if r := e.do(http.MethodPost, delegatePath, valid); r.status != http.StatusCreated {
		t.Errorf("the valid delegation: %d %s", r.status, r.body)
	}
}
