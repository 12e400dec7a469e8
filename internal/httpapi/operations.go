package httpapi

import (
	"context"
	"net/http"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/metrics"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// operation is one checkout operation as every transport runs it: REST's handlers
// (server.go) and MCP's tools (mcp.go) call the same functions, so the two cannot drift
// apart. body is the request body (REST) or the payload (MCP), nil when none was sent;
// it is decoded by api, the version of the request, and the session is the caller's.
type operation func(ctx context.Context, api API, caller, id string, body []byte) (checkout.View, error)

func (s *Server) createOp(ctx context.Context, api API, caller, _ string, body []byte) (checkout.View, error) {
	ch, err := api.DecodeCreate(body)
	if err != nil {
		return checkout.View{}, err
	}
	s.expectView(ctx, api, http.StatusCreated)
	view, err := s.sessions.CreateSession(ctx, caller, ch)
	s.count(err, metrics.SessionCreated)
	return view, err
}

func (s *Server) getOp(ctx context.Context, _ API, caller, id string, _ []byte) (checkout.View, error) {
	return s.sessions.GetSession(ctx, caller, id)
}

func (s *Server) updateOp(ctx context.Context, api API, caller, id string, body []byte) (checkout.View, error) {
	ch, err := api.DecodeUpdate(body)
	if err != nil {
		return checkout.View{}, err
	}
	s.expectView(ctx, api, http.StatusOK)
	return s.sessions.UpdateSession(ctx, caller, id, ch)
}

func (s *Server) cancelOp(ctx context.Context, api API, caller, id string, body []byte) (checkout.View, error) {
	trace, err := api.DecodeCancel(body)
	if err != nil {
		return checkout.View{}, err
	}
	s.expectView(ctx, api, http.StatusOK)
	view, err := s.sessions.CancelSession(ctx, caller, id, trace)
	s.count(err, metrics.SessionCanceled)
	return view, err
}

func (s *Server) completeOp(ctx context.Context, api API, caller, id string, body []byte) (checkout.View, error) {
	c, err := api.DecodeComplete(body)
	if err != nil {
		return checkout.View{}, err
	}
	s.expectView(ctx, api, http.StatusOK)
	view, err := s.sessions.CompleteSession(ctx, caller, id, c)
	s.count(err, metrics.SessionCompleted)
	if payment.IsVaultToken(c.Token) {
		s.count(err, metrics.TokenConsumed)
	}
	return view, err
}

// expectView tells the storage layer how the session result of the request of ctx is
// rendered (api's wire format, with status), for recording it with its idempotency key.
func (s *Server) expectView(ctx context.Context, api API, status int) {
	setEncoder(ctx, func(view checkout.View) (int, []byte, error) {
		body, err := encodeJSON(api.EncodeSession(view, s.cfg.Links))
		return status, body, err
	})
}
