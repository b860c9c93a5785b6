#!/usr/bin/env python
"""Bounded load test of `stvfm serve`: 1, 8 and 32 concurrent clients, a fixed number of forecasts each,
p50/p99 latency, throughput, failures, and the server's memory before and after 10,000 more requests.

    PYTHONPATH=src python scripts/serve-load.py                  # a tiny ST-VFM export fit here on a synthetic city
    PYTHONPATH=src python scripts/serve-load.py runs/exports/stvfm-bike --requests 200 --memory-requests 2000
    PYTHONPATH=src python scripts/serve-load.py --serve-options "--keep-alive 5"   # options for `stvfm serve`

The load generator runs on the same machine as the server: figures are for the pair, on this CPU.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from pathlib import Path

from stvfm.serving.load_test import benchmark_service

TINY_STVFM = {"backbone": "tiny", "weights": "random", "temporal_dim": 16, "temporal_heads": 2,
              "encoder_layers": 1, "decoder_layers": 1}


def tiny_export(folder: Path) -> Path:
    """ST-VFM with the tiny backbone, two training batches on a synthetic 16 x 8 city, exported."""
    from stvfm.data.synthetic import write_synthetic_city
    from stvfm.export.writer import export_run
    from stvfm.training.config import RunConfig
    from stvfm.training.runner import fit

    city = write_synthetic_city(folder / "city.npz", days=4, height=16, width=8)
    fit(RunConfig(model="stvfm", dataset=str(city), out=str(folder / "run"), model_options=TINY_STVFM, max_epochs=1,
                  limit_train_batches=2, batch_size=8, progress=False, accelerator="cpu"))
    export_run(folder / "run", folder / "tiny-stvfm")
    return folder / "tiny-stvfm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", nargs="?", help="an export folder (default: a tiny ST-VFM fit here)")
    parser.add_argument("--requests", type=int, default=500, help="forecasts per client count")
    parser.add_argument("--memory-requests", type=int, default=10_000, help="forecasts between the memory readings")
    parser.add_argument("--serve-options", default="", help="options for `stvfm serve`, as one shell-quoted string")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(args.export) if args.export else tiny_export(Path(scratch))
        result = benchmark_service([str(export)], export.resolve().name, str(Path(scratch) / "history.sqlite"),
                                   requests=args.requests, memory_requests=args.memory_requests,
                                   serve_options=tuple(shlex.split(args.serve_options)))
    print("| clients | requests | failed | p50 ms | p99 ms | requests/s | forward passes |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    memory = result["memory"]
    for row in [*result["rows"], *memory["parts"]]:
        print(f"| {row['clients']} | {row['requests']} | {row['failed']} | {row['p50_ms']} | {row['p99_ms']} | "
              f"{row['requests_per_s']} | {row['forward_passes']} |")
    for row in [*result["rows"], *memory["parts"]]:
        if row["failed"]:
            print(f"failures at {row['clients']} clients: {row['failures']}")
    readings = ", ".join(f"{index * memory['requests_per_part']:,}: {mib} MiB" for index, mib in enumerate(memory["rss_mib"]))
    print(f"server RSS after the first {sum(row['requests'] for row in result['rows']):,} requests, then after "
          f"each part: {readings}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
