# The command line (cli/lambda_vision_cli, `lambda-vision` in .venv). Included by the main Makefile.

.PHONY: bench-cli

bench-cli: $(VENV)/.installed $(MODELS_STAMP) ## lambda-vision predict against the in-process pipeline (images/s)
	$(PY) scripts/bench_cli.py

BENCHES += bench-cli
