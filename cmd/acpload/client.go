package main

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The HTTP clients an agent can send its requests through (-client).
const (
	// clientLean is acpload's own HTTP/1.1 client: each agent writes its request and
	// reads the response on its own connection, in its own goroutine. pgbench, the
	// ceiling's client, costs PostgreSQL's host little; this is its counterpart, so that
	// on shared CPUs the load generator takes as little as it can from what it measures.
	clientLean = "lean"
	// clientStd is net/http's client, as most Go agents would use: a connection pool,
	// and a reading and a writing goroutine for each connection.
	clientStd = "net/http"
)

// requestTimeout bounds one request, its response read whole, as the net/http client's
// Timeout does.
const requestTimeout = 30 * time.Second

// agentClients is how a run's agents reach the server: each agent gets its own
// requester, which sends one request at a time and reads each response whole.
type agentClients struct {
	// lean gives each agent a connection of its own through leanRequester; otherwise
	// the agents share std.
	lean bool
	// gzip asks for compressed responses (Accept-Encoding: gzip), as agent platforms do.
	gzip bool
	// std is net/http's client: the agents' with -client net/http, and for one-off
	// requests (probes) either way.
	std *http.Client
}

// newAgentClients returns the clients of a run of concurrency agents, of the given
// kind (clientLean or clientStd).
func newAgentClients(concurrency int, gzip bool, kind string) *agentClients {
	return &agentClients{lean: kind != clientStd, gzip: gzip, std: newClient(concurrency, gzip)}
}

// forAgent returns a requester of the server at base for one agent. The lean client
// speaks HTTP/1.1 over TCP only, so any base but http:// goes through net/http.
func (c *agentClients) forAgent(base string) requester {
	if c.lean {
		if u, err := url.Parse(base); err == nil && u.Scheme == "http" && u.Host != "" {
			return &leanRequester{addr: hostPort(u), host: u.Host, prefix: strings.TrimRight(u.Path, "/"), gzip: c.gzip}
		}
	}
	return &stdRequester{client: c.std, base: base}
}

// closeIdle closes net/http's idle connections; the lean requesters close their own.
func (c *agentClients) closeIdle() { c.std.CloseIdleConnections() }

// newClient returns net/http's client of a run: keep-alive connections, enough idle
// ones per host that no agent ever opens a new connection in the steady state.
// gzip asks for compressed responses, as agent platforms do.
func newClient(concurrency int, gzip bool) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * concurrency,
		MaxIdleConnsPerHost: 2 * concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  !gzip,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// hostPort is u's host with its port, 80 when the URL gives none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// request is one request of an agent: a body ("" for none), an Idempotency-Key ("" for
// none) and a bearer token ("" for none).
type request struct {
	method, path, key, body, bearer, apiVersion string
}

// requester sends one agent's requests, one at a time. A response's body is only valid
// until the next request.
type requester interface {
	do(ctx context.Context, req request) (response, error)
	close()
}

// stdRequester sends through net/http's client.
type stdRequester struct {
	client *http.Client
	base   string
	body   bytes.Buffer
}

func (s *stdRequester) do(ctx context.Context, q request) (response, error) {
	var content io.Reader
	if q.body != "" {
		content = strings.NewReader(q.body)
	}
	req, err := http.NewRequestWithContext(ctx, q.method, s.base+q.path, content)
	if err != nil {
		return response{}, err
	}
	h := req.Header
	if q.body != "" {
		h["Content-Type"] = []string{"application/json"}
	}
	h["Api-Version"] = []string{q.apiVersion}
	if q.key != "" {
		h["Idempotency-Key"] = []string{q.key}
	}
	if q.bearer != "" {
		h["Authorization"] = []string{"Bearer " + q.bearer}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return response{}, err
	}
	s.body.Reset()
	_, err = s.body.ReadFrom(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return response{}, err
	}
	return response{
		status: resp.StatusCode, body: s.body.Bytes(),
		replayed: resp.Header.Get("Idempotent-Replayed") == "true",
	}, nil
}

func (s *stdRequester) close() {}

// leanRequester is one agent's connection, kept alive across its requests: the request
// written in one write, the response read and parsed in the agent's own goroutine, the
// gzip reader and the buffers reused.
type leanRequester struct {
	addr, host string
	// prefix is the base URL's path, which every request's path follows.
	prefix string
	gzip   bool

	conn net.Conn
	r    *bufio.Reader
	// reused is true once conn has carried a response: the server may have closed it
	// while idle, which the next request finds out.
	reused bool
	// watched is the context whose end interrupts conn's reads and writes; unwatch stops
	// that.
	watched context.Context
	unwatch func() bool

	out  []byte
	raw  bytes.Buffer
	body bytes.Buffer
	gz   *gzip.Reader
}

// errIncomplete is a response cut short or not HTTP/1.1.
var errIncomplete = errors.New("malformed or truncated response")

func (l *leanRequester) do(ctx context.Context, q request) (response, error) {
	resp, err := l.try(ctx, q)
	// As net/http does, a request sent on a kept-alive connection that the server had
	// closed meanwhile is sent once more on a new one when that is safe: nothing came
	// back, and the request is a GET or carries an Idempotency-Key.
	var noResponse *noResponseError
	if errors.As(err, &noResponse) && ctx.Err() == nil && (q.method == http.MethodGet || q.key != "") {
		resp, err = l.try(ctx, q)
	}
	return resp, err
}

// noResponseError is a kept-alive connection that took a request and gave back no
// byte of a response: closed by the server while idle.
type noResponseError struct{ err error }

func (e *noResponseError) Error() string {
	return "connection closed before the response: " + e.err.Error()
}
func (e *noResponseError) Unwrap() error { return e.err }

// try sends q once, on the kept-alive connection if there is one.
func (l *leanRequester) try(ctx context.Context, q request) (resp response, err error) {
	if err := ctx.Err(); err != nil {
		return response{}, err
	}
	if l.conn == nil {
		if err := l.dial(ctx); err != nil {
			return response{}, err
		}
	}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if ctx != l.watched {
		l.watch(ctx)
	}
	if err := l.conn.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return response{}, err
	}
	// ctx may have ended before the deadline above replaced the one its end sets.
	if err := ctx.Err(); err != nil {
		return response{}, err
	}
	reused := l.reused
	if _, err := l.conn.Write(l.encode(q)); err != nil {
		if reused && ctx.Err() == nil {
			return response{}, &noResponseError{err}
		}
		return response{}, cmp.Or(ctx.Err(), err)
	}
	resp, keep, err := l.read(q.method)
	if err != nil {
		var noResponse *noResponseError
		if errors.As(err, &noResponse) && !reused {
			err = noResponse.err
		}
		return response{}, cmp.Or(ctx.Err(), err)
	}
	l.reused = true
	if !keep {
		l.close()
	}
	return resp, nil
}

// closedQuietly reports an error of a connection the server closed: end of file, a
// reset or a broken pipe.
func closedQuietly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (l *leanRequester) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", l.addr)
	if err != nil {
		return err
	}
	l.conn, l.reused, l.watched = conn, false, nil
	if l.r == nil {
		l.r = bufio.NewReaderSize(conn, 16<<10)
	} else {
		l.r.Reset(conn)
	}
	return nil
}

// watch makes the end of ctx interrupt the connection's reads and writes. The agents
// of a run share one context, so this is done once a connection, not once a request.
func (l *leanRequester) watch(ctx context.Context) {
	if l.unwatch != nil {
		l.unwatch()
	}
	conn := l.conn
	l.watched = ctx
	l.unwatch = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}

// close closes the connection, if any; the next request dials a new one.
func (l *leanRequester) close() {
	if l.unwatch != nil {
		l.unwatch()
		l.unwatch = nil
	}
	if l.conn != nil {
		_ = l.conn.Close()
		l.conn = nil
	}
	l.watched = nil
}

// encode writes q as an HTTP/1.1 request into the requester's buffer.
func (l *leanRequester) encode(q request) []byte {
	b := append(l.out[:0], q.method...)
	b = append(b, ' ')
	b = append(b, l.prefix...)
	b = append(b, q.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, l.host...)
	b = append(b, "\r\nUser-Agent: acpload\r\n"...)
	if l.gzip {
		b = append(b, "Accept-Encoding: gzip\r\n"...)
	}
	b = append(b, "Api-Version: "...)
	b = append(b, q.apiVersion...)
	b = append(b, "\r\n"...)
	if q.key != "" {
		b = append(b, "Idempotency-Key: "...)
		b = append(b, q.key...)
		b = append(b, "\r\n"...)
	}
	if q.bearer != "" {
		b = append(b, "Authorization: Bearer "...)
		b = append(b, q.bearer...)
		b = append(b, "\r\n"...)
	}
	if q.body != "" {
		b = append(b, "Content-Type: application/json\r\n"...)
	}
	if q.body != "" || (q.method != http.MethodGet && q.method != http.MethodHead) {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(q.body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, q.body...)
	l.out = b
	return b
}

// read reads one response whole: its status, the headers acpload uses and its body,
// inflated when gzipped. keep is false when the server closes the connection after it.
func (l *leanRequester) read(method string) (resp response, keep bool, err error) {
	line, err := l.line()
	if err != nil {
		if len(line) == 0 && closedQuietly(err) {
			err = &noResponseError{err}
		}
		return response{}, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return response{}, false, fmt.Errorf("%w: status line %q", errIncomplete, line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return response{}, false, fmt.Errorf("%w: status line %q", errIncomplete, line)
	}
	if status < 200 {
		// acpload sends no Expect header, so no interim response is due; one would leave
		// the final response behind it unread.
		return response{}, false, fmt.Errorf("%w: an interim response, %q", errIncomplete, line)
	}
	keep = line[7] == '1'
	length, chunked, gzipped := int64(-1), false, false
	for {
		line, err := l.line()
		if err != nil {
			return response{}, false, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return response{}, false, fmt.Errorf("%w: header line %q", errIncomplete, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case headerIs(name, "Content-Length"):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return response{}, false, fmt.Errorf("%w: Content-Length %q", errIncomplete, value)
			}
		case headerIs(name, "Transfer-Encoding"):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case headerIs(name, "Content-Encoding"):
			gzipped = bytes.EqualFold(value, []byte("gzip"))
		case headerIs(name, "Idempotent-Replayed"):
			resp.replayed = string(value) == "true"
		case headerIs(name, "Connection"):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			}
		}
	}
	resp.status = status

	l.raw.Reset()
	switch {
	case method == http.MethodHead || status == http.StatusNoContent || status == http.StatusNotModified:
	case chunked:
		err = l.readChunked()
	case length >= 0:
		err = l.readN(length)
	default:
		// No length: the body runs to the end of the connection.
		_, err = l.raw.ReadFrom(io.LimitReader(l.r, maxBody+1))
		if err == nil && l.raw.Len() > maxBody {
			err = errTooLarge
		}
		keep = false
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return response{}, false, err
	}
	if !gzipped {
		resp.body = l.raw.Bytes()
		return resp, keep, nil
	}
	if l.gz == nil {
		l.gz, err = gzip.NewReader(&l.raw)
	} else {
		err = l.gz.Reset(&l.raw)
	}
	l.body.Reset()
	if err == nil {
		_, err = l.body.ReadFrom(l.gz)
	}
	if err != nil {
		return response{}, false, fmt.Errorf("gzipped body: %w", err)
	}
	resp.body = l.body.Bytes()
	return resp, keep, nil
}

// readChunked reads a chunked body into raw, and its trailer.
func (l *leanRequester) readChunked() error {
	for {
		line, err := l.line()
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: chunk size %q", errIncomplete, line)
		}
		if size == 0 {
			break
		}
		if err := l.readN(size); err != nil {
			return err
		}
		if crlf, err := l.line(); err != nil || len(crlf) != 0 {
			return fmt.Errorf("%w: no CRLF after a chunk", errIncomplete)
		}
	}
	for { // the trailer
		line, err := l.line()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
	}
}

// maxBody bounds a response's body: acpload's are a few KiB.
const maxBody = 16 << 20

// errTooLarge is a body over maxBody.
var errTooLarge = fmt.Errorf("%w: a body over %d bytes", errIncomplete, maxBody)

// readN appends the next n bytes of the connection to raw.
func (l *leanRequester) readN(n int64) error {
	if int64(l.raw.Len())+n > maxBody {
		return errTooLarge
	}
	l.raw.Grow(int(n))
	buf := l.raw.AvailableBuffer()[:n]
	if _, err := io.ReadFull(l.r, buf); err != nil {
		return err
	}
	l.raw.Write(buf)
	return nil
}

// line reads one line without its CRLF; it is valid until the next read. On an error
// it returns what it read of the line.
func (l *leanRequester) line() ([]byte, error) {
	line, err := l.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return line, fmt.Errorf("%w: a line longer than %d bytes", errIncomplete, l.r.Size())
		}
		return line, err
	}
	return bytes.TrimSuffix(line[:len(line)-1], []byte("\r")), nil
}

// headerIs reports whether name is the header want, whatever its case.
func headerIs(name []byte, want string) bool {
	return len(name) == len(want) && strings.EqualFold(string(name), want)
}
