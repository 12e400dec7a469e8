package httpapi

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzhttp"
)

// BenchmarkCompression sends a session-sized and an error-sized JSON body through the
// compress/gzip middleware that withCompression replaced (issue 12) and through
// withCompression, to a client that accepts gzip. wire-B is the body as sent. ns/op
// follows the machine's load; cpu-ns/op, B/op and allocs/op do not.
//
//	go test -run '^$' -bench Compression -benchmem ./internal/httpapi/
func BenchmarkCompression(b *testing.B) {
	session, apiError := compressionBodies(b)
	for _, body := range []struct {
		name string
		json []byte
	}{{"session", session}, {"error", apiError}} {
		for _, mw := range []struct {
			name string
			wrap Middleware
		}{{"stdlib", withStdlibGzip()}, {"gzhttp", withCompression()}} {
			b.Run(body.name+"/"+mw.name, func(b *testing.B) { benchmarkGzipClient(b, mw.wrap(serveBody(body.json))) })
		}
	}
}

// benchmarkGzipClient serves h to a client that accepts gzip and reports the body's
// size as sent (wire-B) and, on Linux, the CPU time of the benchmark's own thread per
// response (cpu-ns/op), which stays put when the machine is busy and ns/op does not.
func benchmarkGzipClient(b *testing.B, h http.Handler) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	req := httptest.NewRequest(http.MethodPost, "/checkout_sessions/cs_1", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	w := &discardResponse{header: http.Header{}}
	start := threadCPU()
	for b.Loop() {
		clear(w.header)
		w.written = 0
		h.ServeHTTP(w, req)
	}
	if used := threadCPU() - start; used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
	b.ReportMetric(float64(w.written), "wire-B")
}

// BenchmarkCompressionLevel sends the session body through withCompression's
// configuration at each of klauspost's fast levels, the measurement compressionLevel
// was chosen from: wire-B against ns/op.
func BenchmarkCompressionLevel(b *testing.B) {
	session, _ := compressionBodies(b)
	for level := gzip.BestSpeed; level <= 6; level++ {
		b.Run("L"+strconv.Itoa(level), func(b *testing.B) {
			wrap, err := gzhttp.NewWrapper(gzhttp.MinSize(compressionMinSize), gzhttp.CompressionLevel(level),
				gzhttp.ContentTypes(compressedContentTypes), gzhttp.EnableZstd(false))
			if err != nil {
				b.Fatal(err)
			}
			benchmarkGzipClient(b, wrap(serveBody(session)))
		})
	}
}

// BenchmarkCompressionInFlight holds compressionAgents session requests in their
// handlers at once, as the database holds them under load, and reports the live heap
// they keep meanwhile beyond what is left once they have answered (held-MiB). A round
// of the same requests first fills the middleware's pool, as steady load does. The
// stdlib middleware took a compressor for every request before its handler ran and
// kept it through the wait; gzhttp takes one only to write a body that pays.
func BenchmarkCompressionInFlight(b *testing.B) {
	const compressionAgents = 32
	session, _ := compressionBodies(b)
	liveHeap := func() uint64 {
		runtime.GC()
		runtime.GC() // the second collection also empties the pools' victim caches
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for _, mw := range []struct {
		name string
		wrap Middleware
	}{{"stdlib", withStdlibGzip()}, {"gzhttp", withCompression()}} {
		b.Run(mw.name, func(b *testing.B) {
			var held uint64
			for b.Loop() {
				var arrived sync.WaitGroup
				release := make(chan struct{})
				h := mw.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					arrived.Done()
					<-release // the database work
					serveBody(session).ServeHTTP(w, r)
				}))
				round := func(hold bool) uint64 {
					var answered sync.WaitGroup
					arrived.Add(compressionAgents)
					for range compressionAgents {
						answered.Go(func() {
							req := httptest.NewRequest(http.MethodPost, "/checkout_sessions/cs_1", nil)
							req.Header.Set("Accept-Encoding", "gzip")
							h.ServeHTTP(&discardResponse{header: http.Header{}}, req)
						})
					}
					arrived.Wait()
					var during uint64
					if hold {
						during = liveHeap()
					}
					close(release)
					answered.Wait()
					return during
				}
				round(false) // fills the pool
				release = make(chan struct{})
				during := round(true)
				if after := liveHeap(); during > after {
					held = max(held, during-after)
				}
			}
			b.ReportMetric(float64(held)/(1<<20), "held-MiB")
		})
	}
}

// discardResponse is the cheapest http.ResponseWriter: it counts the body and keeps it
// nowhere, so the benchmark measures the middleware and not a recorder.
type discardResponse struct {
	header  http.Header
	written int
}

func (d *discardResponse) Header() http.Header { return d.header }
func (d *discardResponse) WriteHeader(int)     {}
func (d *discardResponse) Write(p []byte) (int, error) {
	d.written += len(p)
	return len(p), nil
}

// withStdlibGzip is the response compression the server had before gzhttp, kept only
// as BenchmarkCompression's baseline: a pooled compress/gzip writer at the default
// level, taken for every request that accepts gzip before the handler runs, whatever
// the body turns out to be.
func withStdlibGzip() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Vary", "Accept-Encoding")
			if !stdlibAcceptsGzip(r.Header.Get("Accept-Encoding")) || r.Method == http.MethodHead {
				next.ServeHTTP(w, r)
				return
			}
			gz := stdlibGzipWriters.Get().(*gzip.Writer)
			gz.Reset(w)
			gw := &stdlibGzipResponse{ResponseWriter: w, gz: gz}
			defer func() {
				if gw.started {
					_ = gz.Close()
				}
				stdlibGzipWriters.Put(gz)
			}()
			next.ServeHTTP(gw, r)
		})
	}
}

var stdlibGzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// stdlibAcceptsGzip reads Accept-Encoding: gzip is accepted unless its quality is 0.
func stdlibAcceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				if q, err := strconv.ParseFloat(v, 64); err == nil && q == 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}

// stdlibGzipResponse compresses the body once a status is written.
type stdlibGzipResponse struct {
	http.ResponseWriter
	gz          *gzip.Writer
	started     bool
	passthrough bool
}

func (g *stdlibGzipResponse) WriteHeader(code int) {
	if !g.started && !g.passthrough {
		if g.Header().Get("Content-Encoding") != "" {
			g.passthrough = true
		} else {
			g.started = true
			g.Header().Del("Content-Length")
			g.Header().Set("Content-Encoding", "gzip")
		}
	}
	g.ResponseWriter.WriteHeader(code)
}

func (g *stdlibGzipResponse) Write(p []byte) (int, error) {
	if !g.started && !g.passthrough {
		g.WriteHeader(http.StatusOK)
	}
	if g.passthrough {
		return g.ResponseWriter.Write(p)
	}
	return g.gz.Write(p)
}
