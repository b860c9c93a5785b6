"""The model card: what an export learned from, how well and how long it trained, how to load it.

``card.json`` is the record (served as JSON by ``stvfm serve``); ``README.md`` is the same record
written for people. Both come from the run's own ``metrics.json`` and the prepared data, never
from numbers typed here.
"""

from __future__ import annotations

from typing import Any

from stvfm.data.prepared import PreparedData
from stvfm.models.registry import get_model_entry
from stvfm.training.config import RunConfig

#: Run-record keys that say how a learned model trained (absent for closed-form fits).
TRAINING_KEYS = ("epochs", "train_seconds", "stop_reason", "selection_metric", "best_val_score", "fit_seconds")


def build_card(name: str, run: str, config: RunConfig, data: PreparedData, metrics: dict[str, Any],
               frozen: dict[str, Any] | None, stored: dict[str, int]) -> dict[str, Any]:
    """The card of an export named ``name`` made from the run folder ``run``."""
    import torch

    from stvfm.version import __version__

    series, protocol, shape = data.series, data.protocol, data.forecast_shape
    day = shape.slots_per_day
    splits = {split: {"first_step": str(series.timestamps[begin]), "last_step": str(series.timestamps[end - 1]),
                      "windows": len(data.dataset(split))} for split, (begin, end) in data.splits.items()}
    entry = get_model_entry(config.model)
    settings = metrics.get("settings", {})
    return {
        "name": name,
        "model": config.model,
        "summary": entry.summary,
        "kind": "learned" if entry.cls.trainable else "classical",
        "model_options": config.model_options,
        "data": {
            "dataset": config.dataset,
            "channel": config.channel,
            "channel_names": list(series.channel_names),
            "grid": [shape.height, shape.width],
            "interval_minutes": series.interval_minutes,
            "period": {"first_step": str(series.timestamps[0]), "last_step": str(series.timestamps[-1]),
                       "steps": int(series.values.shape[0])},
            "splits": splits,
            "scaler": data.scaler.to_dict() | {"fit_on": config.scaling},
        },
        "protocol": {
            "history": shape.history, "horizon": shape.horizon,
            "input_steps": max(shape.history, shape.daily_context * day, shape.weekly_context * 7 * day),
            "daily_context": shape.daily_context, "weekly_context": shape.weekly_context,
            "split": list(protocol.split), "scaling": protocol.scaling,
            "clamp": "forecasts clamped to the scaled range [-1, 1] before de-scaling",
        },
        "metrics": {key: metrics[key] for key in ("split", "mae", "rmse", "per_horizon", "n_windows", "n_points")
                    if key in metrics},
        "training": {
            **{key: metrics[key] for key in TRAINING_KEYS if key in metrics},
            **{key: settings.get(key) for key in ("max_epochs", "max_minutes", "patience", "batch_size",
                                                    "limit_train_batches", "precision", "seed", "optim")
               if entry.cls.trainable},
            "machine": metrics.get("machine"),
        },
        "weights": {
            "stored": stored,
            "backbone": frozen,
            "label": (metrics.get("weights") or {}).get("label"),
            "parameters": metrics.get("parameters"),
        },
        "source_run": run,
        "exported_with": {"stvfm": __version__, "torch": torch.__version__},
    }


def render_readme(card: dict[str, Any], onnx: dict[str, Any] | None) -> str:
    """The card as Markdown."""
    data, protocol, metrics, training, weights = (card[key] for key in ("data", "protocol", "metrics", "training",
                                                                        "weights"))
    horizon = protocol["horizon"]
    lines = [
        f"# {card['name']}: {card['model']} on {data['dataset']}",
        "",
        (f"{card['summary'].rstrip('.')} ({card['kind']}), exported by stvfm {card['exported_with']['stvfm']} "
        f"(torch {card['exported_with']['torch']}) from the run `{card['source_run']}`."),
        "",
        "## Data",
        "",
        (f"- dataset `{data['dataset']}`, channel {data['channel']} ({', '.join(data['channel_names'])}), "
        f"grid {data['grid'][0]} x {data['grid'][1]}, one step every {data['interval_minutes']} minutes"),
        f"- period {data['period']['first_step']} to {data['period']['last_step']} ({data['period']['steps']} steps)",
        *(f"- {split}: {part['first_step']} to {part['last_step']}, {part['windows']} windows"
          for split, part in data["splits"].items()),
        (f"- scaler: min-max to [-1, 1] over [{data['scaler']['minimum']:g}, {data['scaler']['maximum']:g}], "
        f"fit on {data['scaler']['fit_on']}"),
        "",
        "## Protocol",
        "",
        f"{protocol['history']} input steps, {horizon} forecast steps, chronological "
        f"{'/'.join(f'{part:g}' for part in protocol['split'])} split, stride-1 windows; "
        f"{protocol['clamp']}. The forecaster reads the last {protocol['input_steps']} steps"
        + (f" (daily context {protocol['daily_context']}, weekly {protocol['weekly_context']})"
           if protocol["input_steps"] > protocol["history"] else "") + ".",
        "",
        f"## Test metrics ({metrics.get('n_windows')} windows, original units)",
        "",
        "| metric | all steps | " + " | ".join(f"t+{step + 1}" for step in range(horizon)) + " |",
        "|---|---:|" + "---:|" * horizon,
        *(f"| {name.upper()} | {metrics[name]:.4f} | " + " | ".join(f"{value:.3f}" for value in metrics["per_horizon"][name])
          + " |" for name in ("mae", "rmse")),
        "",
        "## Training",
        "",
        *(f"- {key.replace('_', ' ')}: {f'{value:.4g}' if isinstance(value, float) else value}"
          for key, value in training.items() if key not in ("machine", "optim")),
        "- machine: " + ", ".join(f"{key} {value}" for key, value in (training.get("machine") or {}).items()),
        "",
        "## Weights",
        "",
        (f"- `weights.safetensors`: {weights['stored']['tensors']} tensors, {weights['stored']['values']:,} values "
        "(what the run learned or fitted)"),
    ]
    frozen = weights["backbone"]
    if frozen:
        lines.append(f"- frozen backbone {frozen['label']}: provider `{frozen['provider']}`"
                     + (f", source `{frozen['source']}`" if frozen["source"] else "")
                     + f", {len(frozen['names'])} tensors, sha256 `{frozen['sha256']}`; not copied: rebuilt from "
                     "its provider when the export loads, and refused if its digest differs")
    elif weights.get("label"):
        lines.append(f"- {weights['label']}: no provider can rebuild these weights, so they are stored above")
    if onnx and not onnx.get("file"):
        lines += ["", "## ONNX", "", f"No ONNX graph: {onnx['reason']}."]
    elif onnx:
        lines += ["", "## ONNX", "", (f"- `{onnx['file']}`: opset {onnx['opset']}, inputs "
                  f"{', '.join(onnx['inputs'])}, output `forecast` in scaled units; max abs difference from PyTorch "
                  f"on the test split {onnx['max_abs_diff_scaled']:.2e} (scaled units, {onnx['windows']} windows)")]
        if onnx.get("int8"):
            int8 = onnx["int8"]
            lines.append(f"- `{int8['file']}`: dynamic int8 quantisation; test MAE {int8['mae']:.4f} "
                         f"(fp32 {int8['mae_fp32']:.4f}), RMSE {int8['rmse']:.4f} (fp32 {int8['rmse_fp32']:.4f})")
    lines += [
        "",
        "## Load it",
        "",
        "```python",
        "import stvfm",
        f"forecaster = stvfm.load('{card['name']}')",
        ("future, future_timestamps = forecaster.forecast(history, timestamps)  "
        f"# history: (>= {protocol['input_steps']}, {len(data['channel_names'])}, {data['grid'][0]}, {data['grid'][1]})"),
        "```",
        "",
        (f"or `stvfm predict --checkpoint {card['name']} --input series.npz --output forecast.npz`, "
        f"`stvfm test --checkpoint {card['name']} --out retest/`, `stvfm serve {card['name']}`."),
        "",
    ]
    return "\n".join(lines)
