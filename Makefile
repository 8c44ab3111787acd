# Fafnir's everyday commands. `make help` lists them. Everything runs offline once the
# registries' packages are fetched; CI (`.ci/run`) runs the same checks.

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
PG_URL ?= postgres://postgres@127.0.0.1:5432/postgres
IMAGE ?= fafnir:dev
VENV ?= .ci/venv
COMPOSE := docker compose -f deploy/compose.yaml

.PHONY: help run run-release test test-postgres bench lint fmt codegen codegen-check migrate \
        web web-test docker compose compose-single k8s-validate monitoring-test deploy-check

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

run: ## Start Fafnir on ./fafnir.db (SQLite), everything in one process
	$(CARGO) run --bin fafnir

run-release: ## The same, optimised
	$(CARGO) run --release --bin fafnir

test: ## Run the tests (Postgres ones skip without FAFNIR_TEST_DATABASE_URL)
	$(CARGO) test --workspace

test-postgres: ## Run the tests with the Postgres-backed ones required
	FAFNIR_TEST_DATABASE_URL=$(PG_URL) FAFNIR_REQUIRE_POSTGRES=1 $(CARGO) test --workspace

bench: ## Run the criterion benchmarks (results: docs/performance.md)
	$(CARGO) bench -p fafnir-benches

lint: ## rustfmt check, clippy with warnings as errors, and the web app's type check and lint
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	cd examples/web && npm run typecheck && npm run lint

fmt: ## Format the Rust code
	$(CARGO) fmt --all

codegen: ## Regenerate docs/schema.graphql, docs/openapi.json and the web app's GraphQL types
	FAFNIR_UPDATE_SCHEMA=1 $(CARGO) test -p fafnir-server --test e2e -- schema_file openapi_file
	cd examples/web && npm run codegen

codegen-check: ## Fail if any generated file is stale
	$(CARGO) test -p fafnir-server --test e2e -- schema_file openapi_file
	cd examples/web && npm run codegen:check

migrate: ## Apply the migrations to FAFNIR_DATABASE_URL (default ./fafnir.db), then exit
	$(CARGO) run --bin fafnir -- migrate

web: ## Start the web app in development (against FAFNIR_URL, default http://127.0.0.1:8080)
	cd examples/web && npm ci && npm run dev

web-test: ## The web app's browser tests (builds the fafnir binary first)
	$(CARGO) build -p fafnir-cli
	cd examples/web && npm ci && npm test

docker: ## Build the container image (needs Docker)
	docker build -f deploy/Dockerfile -t $(IMAGE) .

compose: ## Microservice mode on Postgres with Prometheus and Grafana (needs Docker)
	$(COMPOSE) up --build

compose-single: ## Everything in one process on Postgres (needs Docker)
	$(COMPOSE) --profile single up --build fafnir postgres mailpit

monitoring-test: ## promtool: the alert rules' unit tests
	promtool check rules deploy/monitoring/rules/*.yml
	cd deploy/monitoring && promtool test rules tests/*.test.yml

k8s-validate: ## Validate the Kubernetes manifests offline
	$(VENV)/bin/python deploy/k8s/validate.py

deploy-check: monitoring-test k8s-validate ## Every offline deploy check: Dockerfile, compose, Kubernetes, alerts
	$(VENV)/bin/hadolint deploy/Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml
	promtool check config deploy/monitoring/prometheus.yml
