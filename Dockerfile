# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on a distroless base, running as non-root.

# The same Go as the Makefile and .ci/run (GOTOOLCHAIN=go1.27.3): none of its known
# vulnerabilities is reachable from our code (make vulncheck).
FROM golang:1.27.3-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/agentic-commerce-server ./cmd/agentic-commerce-server

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/agentic-commerce-server /agentic-commerce-server
COPY internal/catalog/demo/products.jsonl /demo/products.jsonl
USER nonroot:nonroot
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/agentic-commerce-server", "healthcheck"]
ENTRYPOINT ["/agentic-commerce-server"]
CMD ["serve"]
