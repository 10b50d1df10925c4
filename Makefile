# heeprd: `make run` starts a server on a data directory under the repo, `make test` runs every
# test. Targets are listed by `make help`.

GO        ?= go
DATA      ?= ./data
ADDR      ?= 127.0.0.1:8080
OPS_ADDR  ?= 127.0.0.1:9464
FUZZTIME  ?= 30s
BIN       := bin/heeprd

.PHONY: help build run test test-short vet fmt check fuzz bench loadtest crashtest clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/heeprd
	$(GO) build -o $(BIN) ./cmd/heeprd

run: build ## start heeprd with its data in ./data (override DATA, ADDR, OPS_ADDR)
	@echo "heeprd: agent API on http://$(ADDR), admin API and metrics on http://$(OPS_ADDR)"
	@echo "heeprd: data in $(DATA); admin token in $(DATA)/admin-token once started"
	./$(BIN) --data $(DATA) --addr $(ADDR) --ops-addr $(OPS_ADDR)

test: vet ## run every test with the race detector (end-to-end tests included)
	$(GO) test -race -count=1 -timeout 20m ./...

test-short: ## run the unit tests only
	$(GO) test -race -short -count=1 ./...

vet: ## go vet and a gofmt check
	$(GO) vet ./...
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then \
		echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

fmt: ## format the code
	gofmt -w .

check: vet ## vet, gofmt and no shortcoming marks without an issue number
	@if grep -rnE '(TODO|FIXME|XXX|HACK)' --include='*.go' . | grep -vE 'TODO\(#[0-9]+\)'; then \
		echo "marks above name no issue"; exit 1; fi

fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$target"; \
			$(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

bench: ## run the Go benchmarks of the hot path
	$(GO) test -run='^$$' -bench=. -benchmem ./...

crashtest: build ## kill heeprd 50 times under a write workload and check every acknowledged write
	$(GO) run ./bench crash --spawn $(BIN) --kills 50

loadtest: build ## about a minute of load: heeprd's empty-poll path against a bare fasthttp ceiling
	$(GO) run ./bench poll --spawn $(BIN) --agents 10000 --connections 64 --warmup 3s \
		--duration 15s --ceiling --pin --server-args=--agent-rate=0

clean: ## remove the binary (the data directory is left alone)
	rm -rf bin
