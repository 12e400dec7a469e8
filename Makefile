# agentic-commerce-server — developer entry points. `make help` lists them.

# Every target builds, tests, scans and benchmarks with this Go toolchain: it has no known
# vulnerability reachable from our code (make vulncheck). Machines here start with
# GOTOOLCHAIN=local, so the Makefile sets it rather than taking the environment's; the
# go command fetches the toolchain from the module proxy once. To try another one, put
# it on the command line: `make vulncheck GOTOOLCHAIN=local`.
GOTOOLCHAIN  := go1.27.3
export GOTOOLCHAIN

# The Go vulnerability database make vulncheck scans against: a version of the
# golang.org/x/vulndb module, indexed offline by scripts/vulndb.sh (docs/operations.md).
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018

BIN          := bin/agentic-commerce-server
DEMO_CATALOG := internal/catalog/demo/products.jsonl
DEMO_DISCOUNTS := internal/catalog/demo/discounts.json
GO_TEST      ?= go test -race -count=1 -timeout 15m

.DEFAULT_GOAL := help
.PHONY: help run build test verify vulncheck staticcheck generate db-up db-stop docker clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: build ## Start PostgreSQL if needed, migrate, import the demo catalog and discounts, serve on :8080
	@set -e; \
	DATABASE_URL="$${DATABASE_URL:-$$(go run ./cmd/devdb up)}"; export DATABASE_URL; \
	if [ -z "$${CARD_FINGERPRINT_KEY:-}" ]; then \
		[ -s .data/card-fingerprint.key ] || { mkdir -p .data; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > .data/card-fingerprint.key; }; \
		CARD_FINGERPRINT_KEY="$$(cat .data/card-fingerprint.key)"; export CARD_FINGERPRINT_KEY; \
	fi; \
	./$(BIN) migrate up; \
	./$(BIN) catalog import $(DEMO_CATALOG); \
	./$(BIN) discounts import $(DEMO_DISCOUNTS); \
	DRAIN_DELAY=$${DRAIN_DELAY:-0s} exec ./$(BIN) serve

build: ## Build the server binary into bin/
	CGO_ENABLED=0 go build -trimpath -o $(BIN) ./cmd/agentic-commerce-server

test: ## Unit and integration tests against a throwaway PostgreSQL (started for you)
	$(GO_TEST) ./...
	@# The API tests again without the session view cache (on by default), so that every
	@# behaviour and race is also checked with writes that read what they start from.
	TEST_SESSION_CACHE_SIZE=0 $(GO_TEST) ./internal/httpapi/

# Fuzz targets, package:function, run one after the other for FUZZTIME each. New inputs
# are minimised for at most FUZZMINTIME, so a large seed cannot stall a short run.
FUZZTIME     ?= 20s
FUZZMINTIME  ?= 2s
FUZZ_TARGETS := ./internal/acp/v20250929:FuzzCreateRequest ./internal/acp/v20250929:FuzzUpdateRequest \
                ./internal/acp/v20250929:FuzzCompleteRequest ./internal/acp/v20250929:FuzzDelegateRequest \
                ./internal/acp/v20250929:FuzzIdempotencyHash ./internal/idempotency:FuzzCanonicalIsMarshal \
                ./internal/acp:FuzzKeysCleanAgrees ./internal/httpapi:FuzzDelegateRequestHash \
                ./internal/catalog:FuzzParse

.PHONY: test-fuzz
test-fuzz: ## Fuzz the request decoders, the idempotency hash and the catalog parser (FUZZTIME=20s each)
	@set -e; for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; fn=$${target##*:}; \
		echo "go test -run '^$$' -fuzz '^$$fn\$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) $$pkg"; \
		go test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) $$pkg; \
	done

# make bench BENCH_C=16 BENCH_D=30s BENCH_ARGS='-json -pool-max-conns 8'
# make bench BENCH_PGBOUNCER=1: the server reaches PostgreSQL through pgbouncer in
# transaction pooling; compare its throughput ratio with a direct run's.
#   BENCH_C=8,16,32         concurrency levels, each with its own ceiling, phases and RSS
#   BASELINE=main           also build the server at this git revision; every figure side by side
#   BENCH_DURABLE=1         PostgreSQL with fsync=on and synchronous_commit=on
#   BENCH_PIN=1             PostgreSQL on half of the CPUs, the server and the load on the others
#   BENCH_FLASH_STOCK=2000  add the flash sale: 32 agents buy one item with this stock
#   BENCH_PSP_DELAY=300ms   add the slow-PSP phase: a fake Stripe API answering after the delay
#   BENCH_SESSION_CACHE=0   the servers with SESSION_CACHE_SIZE=0, the cache off (default 10000; a baseline older than the cache ignores it)
#   BENCH_ARGS='-client net/http'  the agents on Go's net/http client (default: acpload's lean HTTP/1.1 client)
BENCH_C    ?= 8
BENCH_D    ?= 20s
BENCH_ARGS ?=
BENCH_PGBOUNCER ?=
BASELINE ?=
BENCH_DURABLE ?=
BENCH_PIN ?=
BENCH_FLASH_STOCK ?=
BENCH_PSP_DELAY ?=
BENCH_SESSION_CACHE ?=
.PHONY: bench
bench: build ## Benchmark against the pgbench ceiling (BENCH_C=8,16,32 BASELINE=rev BENCH_DURABLE=1 BENCH_PIN=1 BENCH_FLASH_STOCK=N BENCH_PSP_DELAY=300ms BENCH_SESSION_CACHE=N)
	go run ./cmd/acpload -bench -server ./$(BIN) -c $(BENCH_C) -d $(BENCH_D) $(if $(BENCH_PGBOUNCER),-pgbouncer) \
		$(if $(BASELINE),-baseline '$(BASELINE)') $(if $(filter 1 true yes,$(BENCH_DURABLE)),-durable) \
		$(if $(filter 1 true yes,$(BENCH_PIN)),-pin) \
		$(if $(BENCH_FLASH_STOCK),-flash-sale $(BENCH_FLASH_STOCK)) $(if $(BENCH_PSP_DELAY),-psp-delay $(BENCH_PSP_DELAY)) \
		$(if $(BENCH_SESSION_CACHE),-server-env SESSION_CACHE_SIZE=$(BENCH_SESSION_CACHE)) $(BENCH_ARGS)

# The checkout suites (HTTP and storage) through pgbouncer in transaction pooling, with
# the query exec mode docs/operations.md recommends (internal/pgtest, TEST_PGBOUNCER).
.PHONY: test-pgbouncer
test-pgbouncer: ## The HTTP and storage test suites through pgbouncer in transaction pooling
	TEST_PGBOUNCER=1 $(GO_TEST) ./internal/httpapi/ ./internal/postgres/

verify: ## Fail on stale generated code, gofmt/vet/staticcheck findings, merge conflict markers or a reachable vulnerability
	go tool sqlc diff
	@$(MAKE) --no-print-directory oapi-diff
	go mod tidy -diff
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	@# A merge's conflict markers in a document compile fine and render as text: refuse them.
	@if git grep -n -E '^(<<<<<<<|>>>>>>>) ' -- . ; then echo "conflict markers left by a merge (above)"; exit 1; fi
	go vet ./...
	@$(MAKE) --no-print-directory staticcheck vulncheck

staticcheck: ## Run the pinned staticcheck over the code and its tests
	go tool staticcheck ./...

vulncheck: ## Fail on any known vulnerability reachable from our code (offline database, VULNDB_VERSION)
	@set -e; go version; \
	db="$$(scripts/vulndb.sh $(VULNDB_VERSION))"; \
	echo "go tool govulncheck -db file://$$db ./..."; \
	go tool govulncheck -db "file://$$db" ./...

generate: ## Regenerate db/ with sqlc and the ACP wire types (internal/acp) with oapi-codegen
	go tool sqlc generate
	go generate ./internal/acp/...

# The ACP wire types generated by oapi-codegen: each package's doc.go has a line
# `//go:generate go tool oapi-codegen -config CFG -o OUT SPEC`. oapi-diff runs that
# line without -o and diffs its output with OUT.
.PHONY: oapi-diff
oapi-diff: ## Fail when the oapi-codegen output in internal/acp is stale (regenerated to stdout and diffed)
	@set -e; for doc in $$(grep -rl --include=doc.go '^//go:generate go tool oapi-codegen ' internal/acp); do \
		dir="$$(dirname "$$doc")"; \
		line="$$(sed -n 's|^//go:generate go tool oapi-codegen ||p' "$$doc")"; \
		out="$$(echo "$$line" | sed -n 's|.* -o \([^ ]*\) .*|\1|p')"; \
		args="$$(echo "$$line" | sed 's| -o [^ ]*||')"; \
		echo "go tool oapi-codegen $$args | diff $$dir/$$out -"; \
		(cd "$$dir" && go tool oapi-codegen $$args) | diff -u "$$dir/$$out" - \
			|| { echo "$$dir/$$out is stale: run make generate"; exit 1; }; \
	done

db-up: ## Start (or reuse) the development PostgreSQL and print its URL
	@go run ./cmd/devdb up

db-stop: ## Stop the development PostgreSQL started under ./.data/
	@go run ./cmd/devdb down

docker: ## Build the container image
	docker build -t agentic-commerce-server .

clean: ## Remove build output (not the development database)
	rm -rf bin/
