# Peak memory of worst-case requests (single-colour 6000x6000 PNGs), one process per case. Included by the Makefile.

.PHONY: bench-memory

bench-memory: $(VENV)/.installed $(MODELS_STAMP) ## Peak memory of worst-case requests (target: 1 GB)
	$(PY) scripts/bench_memory.py

BENCHES += bench-memory
