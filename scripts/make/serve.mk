# Local API: the API Gateway REST API of template.yaml on http://$(HOST):$(PORT), with real Lambda runtime
# workers and no Docker (samlocal/, installed into .venv). Included by the main Makefile.
#   make serve                          PORT=8080 HOST=0.0.0.0 to change where it listens
#   make serve SERVE_ARGS="--env-vars env.json --max-concurrency 4 --debug"

SAMLOCAL := $(VENV)/bin/samlocal
SERVE_ARGS ?=

SAMPLES_DIR := .build/samples

.PHONY: serve bench-local sample-images

serve: $(VENV)/.installed $(MODELS_STAMP) ## Serve the API of template.yaml locally (no Docker): PORT, HOST, SERVE_ARGS
	$(SAMLOCAL) start-api --template template.yaml --host $(HOST) --port $(PORT) --warm-containers eager $(SERVE_ARGS)

sample-images: $(VENV)/.installed ## Images for the README's curl examples, in .build/samples
	$(PY) scripts/samples.py $(SAMPLES_DIR)

bench-local: $(VENV)/.installed $(MODELS_STAMP) ## Local API overhead over a direct handler call, throughput, parallel requests
	$(PY) scripts/bench_local.py

# The differential test of the local API against SAM CLI's own event construction needs SAM CLI.
TEST_CHECKS += sam-cli
BENCHES += bench-local
