# make demo / make test / make bench / make lint: create .venv if missing, then act.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench lint results results-doc paper-table hail-env clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,bench,integration,series]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/biolatent demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# one torch thread: the fast tests' tensors are tiny, and two threads on two cores only contend (130 s vs 480 s
# measured beside another job)
test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e ".[bench,integration,series]"
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/vae_vs_scvi.py
	$(BIN)/python benchmarks/gwas_vs_plink2.py
	$(BIN)/python benchmarks/gwas_vs_plink2.py --dataset geuvadis-chr22
	$(BIN)/python benchmarks/gwas_end_to_end.py
	$(BIN)/python benchmarks/reml_scaling.py
	$(BIN)/python benchmarks/simulation_truth.py
	$(BIN)/python benchmarks/geuvadis_discover.py
	$(BIN)/python benchmarks/genotype_image_chain.py
	$(BIN)/python benchmarks/anomaly_series.py
	$(BIN)/python benchmarks/anomaly_images.py
	$(BIN)/python benchmarks/anomaly_volumes.py
	$(BIN)/python benchmarks/anomaly_budget.py
	$(BIN)/python benchmarks/anomaly_budget.py --register --epochs-grid 10
	$(BIN)/python benchmarks/anomaly_ct.py
	$(BIN)/python benchmarks/spatial_expression.py
	$(BIN)/python benchmarks/series_ssl.py

# real-data runs (GPU-sized): stored under benchmarks/results/real_data-*; then `make results-doc`
results: $(STAMP)
	$(BIN)/python benchmarks/real_data_results.py

# rewrite the generated blocks of docs/results.md from benchmarks/results/ (nothing else in the doc)
results-doc: $(STAMP)
	$(BIN)/python benchmarks/results_doc.py

# rewrite docs/paper_table.md (the review's claims beside the stored outputs, verdicts from intervals)
paper-table: $(STAMP)
	$(BIN)/python benchmarks/paper_table.py

# the Hail (Spark) GWAS engine: an environment of its own (hail pins rich<13 and typer<1); needs Java
hail-env: .venv-hail/bin/hail-installed

.venv-hail/bin/hail-installed:
	$(PYTHON) -m venv .venv-hail
	.venv-hail/bin/pip install -q hail==0.2.139
	touch .venv-hail/bin/hail-installed

clean:
	rm -rf $(VENV) .venv-hail build *.egg-info
