# Multi-stage build: a static binary on a distroless base, running as non-root.
#
# The base images are build arguments so that the image also builds where no registry is
# reachable, from images built locally (scripts/local-images.sh; CI does this):
#   docker build --network host \
#     --build-arg GO_IMAGE=acp-local/golang:1.27.3-bookworm \
#     --build-arg RUNTIME_IMAGE=acp-local/debian:bookworm -t agentic-commerce-server .
# There is no `# syntax=` line on purpose: with BuildKit it makes the build pull the
# Dockerfile frontend from a registry first, and nothing here needs a newer frontend.

# The same Go as the Makefile and .ci/run (GOTOOLCHAIN=go1.27.3): none of its known
# vulnerabilities is reachable from our code (make vulncheck).
ARG GO_IMAGE=golang:1.27.3-bookworm
# Any base with no shell works too: the binary is static and the healthcheck is its own.
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
# The module proxy to download from, when the builder's default is not the one to use
# (CI passes the host's `go env GOPROXY`); unset, Go's default applies.
ARG GOPROXY
WORKDIR /src
# No separate `go mod download` layer: go.mod also lists the development tools (sqlc,
# staticcheck, govulncheck, oapi-codegen), whose modules are most of the download and
# never reach the binary; `go build` fetches only the modules the server imports.
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/agentic-commerce-server ./cmd/agentic-commerce-server

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/agentic-commerce-server /agentic-commerce-server
COPY internal/catalog/demo/products.jsonl internal/catalog/demo/discounts.json /demo/
# distroless's nonroot user, by number: a runtime base without that name in /etc/passwd
# (a minimal Debian) runs the server as the same unprivileged user.
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/agentic-commerce-server", "healthcheck"]
ENTRYPOINT ["/agentic-commerce-server"]
CMD ["serve"]
