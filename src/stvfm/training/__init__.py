"""Training and evaluation of registered forecasters.

Owns: the run configuration (``config``: ``RunConfig``, its identity / budget / placement roles,
the protocol a model asks for), checkpoint I/O (``checkpoints``: atomic writes, safe loads,
rebuilding a checkpoint's model from its recorded options, used by test, predict and
``--init-from``), the trainer and selection callbacks (``trainer``), claiming a run folder
(``claim``, ``folders``), the test pass and outputs (``results``), fit / evaluate / test
(``runner``), how a training ended (``stopping``), multi-dataset pre-training (``pretrain``),
forecasting past a series' end (``inference``), recipes, the shared LightningModule (``task``),
metrics, the protocol card, each test window's error and re-scoring saved forecasts (``scoring``),
the paired test on two runs' window errors (``significance``), optimisers and schedules,
speed-ups, the benchmarks (``benchmark``: throughput and a whole epoch; ``cost_scaling``;
``accuracy_check``: bf16 vs fp32), FLOPs counted per window (``flops``) and what a run will cost
before it is spent (``cost``).

May import: ``stvfm.data``, ``stvfm.models``, ``stvfm.atomic``, ``stvfm.errors``, torch and
lightning; never ``stvfm.ledger`` (it reads finished runs: ``fit`` returns its result and takes a
``finished`` hook from the caller that records it), ``stvfm.reports`` (``folders`` is read by it),
``stvfm.experiments``, the CLI or ``stvfm.testing``.

Imports from stvfm: ``stvfm.data``, ``stvfm.models``, ``stvfm.shape``, ``stvfm.errors``, ``stvfm.atomic``,
``stvfm.values``, ``stvfm.host``, ``stvfm.runs_root``.
"""
