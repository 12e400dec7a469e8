// Package testkit is the shared kit of the HTTP tests: a webhook Receiver that records
// what the server posts and verifies its Merchant-Signature, the ACP JSON Schemas of an
// API version (Schemas), and a small JSON HTTP Client usable against an httptest server
// or the real binary.
//
// It is imported only by tests (_test.go files); production code must not import it.
// It lives in ordinary .go files so that tests of several packages can share it.
package testkit
