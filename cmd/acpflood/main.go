// Command acpflood replays the unauthenticated flood of the security review (issue 15,
// item 1) against a running server: n requests, each with a unique 4 KB method and a
// random /orders/ path, over c keep-alive connections, optionally each from a new
// X-Forwarded-For address (for a server that trusts this host as a proxy). It prints
// how many answers each status got; watch the server's RSS and /metrics meanwhile
// (docs/security.md, "Measured"). It sends to the address given and nowhere else.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address (host:port)")
	n := flag.Int("n", 20000, "requests to send")
	conns := flag.Int("c", 32, "connections")
	xff := flag.Bool("xff", false, "send a new X-Forwarded-For address with every request")
	flag.Parse()

	var next atomic.Int64
	var mu sync.Mutex
	statuses := map[int]int{}
	count := func(status int) {
		mu.Lock()
		statuses[status]++
		mu.Unlock()
	}
	padding := strings.Repeat("X", 4096)
	start := time.Now()
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() {
			var conn net.Conn
			var br *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for i := next.Add(1); i <= int64(*n); i = next.Add(1) {
				if conn == nil {
					c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
					if err != nil {
						log.Fatalf("acpflood: %v", err)
					}
					conn, br = c, bufio.NewReader(c)
				}
				header := ""
				if *xff {
					header = fmt.Sprintf("X-Forwarded-For: 10.%d.%d.%d\r\n", (i>>16)&255, (i>>8)&255, i&255)
				}
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(conn, "M%d%s /orders/ord_%d_%d HTTP/1.1\r\nHost: flood\r\n%s\r\n", i, padding, i, rand.Int64(), header)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					count(-1) // the connection broke: a new one is dialled
					conn.Close()
					conn = nil
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				count(resp.StatusCode)
				if resp.Close {
					conn.Close()
					conn = nil
				}
			}
		})
	}
	wg.Wait()
	codes := make([]int, 0, len(statuses))
	for code := range statuses {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	fmt.Printf("%d requests in %s\n", *n, time.Since(start).Round(time.Millisecond))
	for _, code := range codes {
		label := fmt.Sprint(code)
		if code == -1 {
			label = "broken connection"
		}
		fmt.Printf("  %s: %d\n", label, statuses[code])
	}
}
