# Batch jobs: the local job path against the in-process pipeline, and the cost table. Included by the Makefile.

.PHONY: bench-jobs

bench-jobs: $(VENV)/.installed $(MODELS_STAMP) ## Local batch jobs at 1, 2 and 4 workers vs the in-process pipeline; $ per million images
	$(PY) scripts/bench_jobs.py

BENCHES += bench-jobs
