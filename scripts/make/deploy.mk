# Deployment: the SAM template, its OpenAPI definition, builds for both CPU architectures, the size budget,
# the dependency lock, and deploy / smoke / destroy. Included by the main Makefile.

ARCHITECTURES := arm64 x86_64
# The architecture `make build` and `make deploy` use (the template's default).
ARCH ?= arm64
# SAM CLI asks about telemetry on first use and sends it by default: neither belongs in a build.
SAM_RUN := SAM_CLI_TELEMETRY=0 $(SAM)
UV_VERSION := 0.13.8
LOCK_VENV := .venv-lock
LOCK := layers/dependencies/requirements.txt
# Everything `sam build` reads; dotfiles (such as the models' .verified stamp) and bytecode are not inputs.
BUILD_INPUTS := template.yaml swagger.yaml $(shell find functions/inference layers -type f \
	-not -name '.*' -not -name '*.pyc' -not -path '*/__pycache__/*' -not -path 'layers/dependencies/python/*' \
	2>/dev/null | sort)

.PHONY: validate swagger swagger-check build builds budget lock deploy smoke destroy cost

validate: $(SAM_VENV)/.installed ## sam validate --lint (cfn-lint) on template.yaml, as a REST and as an HTTP API
	$(SAM_RUN) validate --lint --template-file template.yaml
	$(SAM_VENV)/bin/cfn-lint template.yaml --parameters ApiType=HTTP

cost: $(VENV)/.installed ## The most a day of the stack can cost (template defaults and samconfig.toml environments)
	$(PY) scripts/cost.py

swagger: $(VENV)/.installed ## Regenerate swagger.yaml from the app's OpenAPI document
	$(PY) scripts/generate_swagger.py

swagger-check: $(VENV)/.installed ## Fail when swagger.yaml is not what the app describes
	$(PY) scripts/generate_swagger.py --check

# `sam build` for one architecture, without Docker: the layer Makefiles read ARCHITECTURE (SAM CLI does not
# pass the function's architecture to makefile builds), the template gets the same value as a parameter.
.aws-sam/build-%/template.yaml: $(SAM_VENV)/.installed $(MODELS_STAMP) $(BUILD_INPUTS)
	@test -n "$(filter $*,$(ARCHITECTURES))" || { echo "unknown architecture $*" >&2; exit 1; }
	ARCHITECTURE=$* $(SAM_RUN) build --template-file template.yaml --build-dir .aws-sam/build-$* \
		--parameter-overrides Architecture=$*

build: .aws-sam/build-$(ARCH)/template.yaml ## sam build for ARCH (arm64 unless ARCH=x86_64) into .aws-sam/build-ARCH

builds: $(foreach arch,$(ARCHITECTURES),.aws-sam/build-$(arch)/template.yaml) ## sam build for arm64 and x86_64

budget: builds $(VENV)/.installed ## Size of function + layers per architecture, against Lambda's 250 MB
	$(PY) scripts/budget.py $(foreach arch,$(ARCHITECTURES),.aws-sam/build-$(arch))

# The lock is resolved for CPython 3.13 on every platform at once (uv's universal resolution), with the hash
# of every file of every pinned version. uv lives in a throwaway environment of its own.
lock: ## Re-resolve layers/dependencies/requirements.txt from the runtime group of pyproject.toml
	test -x $(LOCK_VENV)/bin/uv || { $(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; }
	$(LOCK_VENV)/bin/uv pip compile --quiet --group pyproject.toml:runtime --universal --python-version 3.13 \
		--generate-hashes --no-emit-index-url --custom-compile-command "make lock" --output-file $(LOCK)

deploy: ## Build and deploy the stack (ENV=prod for the prod environment of samconfig.toml)
	scripts/deploy $(if $(ENV),--config-env $(ENV))

smoke: ## Call the deployed stack with the fixture images (ENV=prod, or API_URL=...)
	scripts/smoke $(if $(ENV),--config-env $(ENV))

destroy: ## Delete the deployed stack (asks first)
	scripts/destroy $(if $(ENV),--config-env $(ENV))

TEST_CHECKS += validate swagger-check budget
