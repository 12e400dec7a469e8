package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client sends JSON requests to a server at Base (an httptest server's URL or a running
// binary's). It reports failures as errors, so it is usable off the test goroutine.
type Client struct {
	Base string
	// HTTP sends the requests; nil is http.DefaultClient.
	HTTP *http.Client
	// Header is sent with every request (e.g. API-Version), before the request's own.
	Header http.Header
}

// Response is a response read whole.
type Response struct {
	Status  int
	Header  http.Header
	Body    []byte
	Path    string        // the request path
	Elapsed time.Duration // from sending the request to reading the body
}

// Do sends a request. body may be nil (no body), a string or []byte (sent as is, with
// Content-Type: application/json) or a value to encode as JSON. headers are name, value
// pairs set after Header; an empty value removes the header.
func (c *Client) Do(method, path string, body any, headers ...string) (Response, error) {
	start := time.Now()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		return Response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw, Path: path, Elapsed: time.Since(start)}, nil
}

// JSON decodes the body as a JSON object.
func (r Response) JSON() (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return nil, fmt.Errorf("response is not a JSON object: %w\n%s", err, r.Body)
	}
	return m, nil
}
