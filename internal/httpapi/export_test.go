package httpapi

import "github.com/gorilla/mux"

// Test hooks into the limiter, whose memory bound the tests check by count.

// AddressBuckets is the number of client-address buckets the limiter holds.
func (s *Server) AddressBuckets() int {
	if s.addrLimiter == nil {
		return 0
	}
	return s.addrLimiter.size()
}

// SetMaxAddressBuckets lowers the bound of the address buckets, before the server serves.
func (s *Server) SetMaxAddressBuckets(n int) { s.addrLimiter.maxKeys = n }

// SupportedVersions lists the API-Version values of the version table, newest first:
// behaviour tests run once per version (forEachVersion).
var SupportedVersions = supportedVersions

// DefaultVersion is the version served to requests without API-Version.
var DefaultVersion = defaultVersion

// Routes lists every route of s, the admin API's included, as "METHOD template".
func Routes(s *Server) []string {
	var out []string
	for _, r := range s.routers {
		_ = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
			tpl, terr := route.GetPathTemplate()
			methods, merr := route.GetMethods()
			if terr != nil || merr != nil {
				return nil // a prefix or a subrouter, not a route of its own
			}
			for _, m := range methods {
				out = append(out, m+" "+tpl)
			}
			return nil
		})
	}
	return out
}
