"""The ST-VFM paper's published test figures, for reports that put ours beside them.

Transcribed from the paper (main Tables 2-4) and its supplement (Tables 2-3). Keys are our
registry names: datasets as in ``stvfm data list``, rows as the reports label them. The
paper's "HA" averages the same slot of previous days, which is our ``ha-day``.
"""

from __future__ import annotations

import math

from stvfm.data.registry import protocol_family

#: Paper column names -> our dataset names.
_COLUMNS = {"Crowd": "crowd", "Cellular": "cellular", "TDrive": "tdrive", "BikeNYC": "bikenyc1",
            "BikeNYC2": "bikenyc2", "TaxiNYC": "taxinyc1", "TaxiNYC2": "taxinyc2", "TrafficZZ": "trafficzz",
            "TrafficTJ": "traffictj", "TrafficSH": "trafficsh"}

# Main Table 2: rows are our model names, value pairs are RMSE MAE per column.
_MAIN = """\
columns Crowd Cellular TDrive BikeNYC BikeNYC2 TaxiNYC TaxiNYC2 TrafficZZ TrafficTJ TrafficSH
ha-day 17.80 6.79 72.94 27.57 150.2 74.5 11.41 3.43 15.68 7.17 57.07 18.57 52.84 15.74 1.47 0.857 1.61 0.824 1.24 0.771
arima 21.87 10.23 81.31 40.22 211.3 108.5 12.37 3.86 25.01 13.63 55.39 20.94 62.9 29.56 1.78 0.998 2.02 1.59 1.17 0.769
stresnet 5.355 3.382 24.30 14.32 220.1 117.4 8.20 4.98 7.18 3.94 29.45 17.96 22.16 12.06 1.03 0.693 1.12 0.714 1.00 0.723
acfm 4.17 2.34 22.79 12.00 98.1 51.9 3.93 1.67 5.99 3.094 23.35 11.54 14.48 6.39 0.839 0.526 0.959 0.574 0.833 0.566
stid 3.85 1.63 18.77 8.24 47.4 23.3 4.06 1.54 5.70 2.711 17.75 7.03 17.37 7.35 0.838 0.502 0.976 0.549 0.742 0.469
stnorm 4.44 2.09 19.77 8.19 54.3 47.9 4.45 1.66 6.47 3.03 21.26 8.14 19.02 7.17 0.885 0.538 0.973 0.533 0.871 0.579
stgsp 7.93 4.56 39.99 21.40 94.6 47.8 5.00 1.69 14.20 7.38 28.13 10.29 29.10 10.14 0.831 0.505 0.989 0.572 1.02 0.749
mcstl 4.75 2.39 21.22 10.26 54.2 28.1 4.08 2.05 6.26 3.40 18.44 9.51 16.78 8.50 1.14 0.81 1.22 0.856 1.00 0.720
mau 4.94 2.35 39.09 18.73 5.22 2.06 1.28 22.1 6.12 2.95 28.70 11.23 19.38 7.27 1.42 0.934 0.988 0.549 1.37 0.991
predrnn 5.13 2.36 24.15 10.44 54.9 25.2 5.00 1.74 6.47 3.08 16.53 5.80 19.89 7.23 0.853 0.508 0.971 0.53 0.748 0.469
mim 5.66 2.27 21.38 9.37 51.4 22.7 4.40 1.62 6.36 2.89 18.83 6.866 18.02 6.56 2.05 1.56 3.44 2.51 0.760 0.505
simvp 3.91 1.96 16.48 8.23 46.8 22.9 4.11 1.67 5.96 2.92 16.63 7.51 15.10 6.54 0.838 0.526 1.00 0.597 0.814 0.569
tau 4.09 2.11 17.94 8.91 51.6 28.1 4.30 1.83 5.98 2.89 16.91 6.85 15.35 6.80 0.839 0.527 1.01 0.606 0.820 0.557
patchtst 10.25 3.62 43.40 15.74 106.40 51.30 5.27 1.65 12.33 5.30 41.34 13.10 37.76 11.13 1.31 0.742 1.44 0.722 1.10 0.663
itransformer 9.40 3.40 37.01 13.93 86.3 42.6 7.74 2.53 9.86 4.50 36.73 13.11 33.03 11.22 1.19 0.696 1.26 0.675 1.04 0.655
stllm 3.17 1.26 15.04 6.01 41.50 19.55 7.65 4.34 7.75 4.58 21.25 9.64 19.02 8.65 0.907 0.576 1.07 0.65 0.710 0.457
unist 3.00 1.38 14.29 6.59 44.97 19.67 3.50 1.27 5.50 2.56 15.32 5.65 12.71 4.82 0.832 0.482 0.958 0.510 0.665 0.405
stvfm 2.51 1.06 12.31 5.57 39.54 16.94 3.38 1.20 5.42 2.46 13.79 4.95 11.85 4.39 0.800 0.457 0.909 0.484 0.645 0.392
"""

# Main Table 3 (ablation), rows are our ST-VFM variants.
_ABLATION = """\
columns Crowd Cellular TDrive BikeNYC TaxiNYC
simple 10.51 4.14 43.11 16.93 94.73 47.24 8.49 2.65 39.18 13.20
unist 3.00 1.38 14.29 6.50 44.97 19.76 3.50 1.27 15.32 5.65
token-adapt 2.69 1.22 13.37 5.93 42.82 18.25 3.53 1.29 14.69 5.62
temporal-encoder 2.63 1.17 12.95 5.78 40.65 17.36 3.44 1.25 14.38 5.41
adapter 2.65 1.17 12.84 5.65 40.02 17.21 3.36 1.22 13.98 5.31
full 2.51 1.06 12.31 5.57 39.54 16.94 3.38 1.20 13.79 4.95
"""

# Supplement Table 3 (VFM backbones); the paper has no TDrive figure for CLIP and DeiT.
_BACKBONES = """\
columns Crowd Cellular TaxiNYC TrafficTJ TDrive BikeNYC BikeNYC2 TaxiNYC2 TrafficZZ TrafficSH
unist 3.00 1.38 14.29 6.59 15.32 5.65 0.95 0.51 44.97 19.67 3.50 1.27 5.50 2.56 12.71 4.82 0.832 0.482 0.665 0.405
clip-b16 2.66 1.10 13.57 5.61 14.84 5.36 0.90 0.49 nan nan 3.45 1.20 5.42 2.58 11.77 4.19 0.814 0.469 0.644 0.396
deit-b 2.78 1.10 12.99 5.60 14.35 5.38 0.91 0.47 nan nan 3.49 1.21 5.34 2.55 11.90 4.22 0.821 0.467 0.641 0.387
dinov2-s 2.51 1.06 12.31 5.57 13.79 4.95 0.91 0.48 39.54 16.94 3.38 1.20 5.42 2.46 11.85 4.39 0.800 0.457 0.645 0.392
"""

# Supplement Table 2 (= main Table 4 on more datasets): video model vs image VFM vs SimVP.
_VIDEO = """\
columns Crowd Cellular TDrive BikeNYC TaxiNYC BikeNYC2 TaxiNYC2 TrafficZZ TrafficTJ TrafficSH
simvp 3.91 1.96 16.48 8.23 46.80 22.90 4.11 1.67 16.63 7.51 5.96 2.92 15.10 6.54 0.838 0.526 1.00 0.597 0.814 0.569
videomae-s 2.90 1.27 15.58 6.08 41.09 17.78 3.91 1.42 16.64 6.00 5.71 2.62 15.25 5.13 0.815 0.458 0.937 0.492 0.747 0.486
dinov2-s 2.51 1.06 12.31 5.57 39.54 16.94 3.38 1.20 13.79 4.95 5.42 2.46 11.85 4.39 0.800 0.457 0.909 0.484 0.645 0.392
"""


# Supplement Table 1 (Crowd, one RTX A5500): training and inference minutes, RMSE, MAE; rows as our plan names them.
EFFICIENCY: dict[str, tuple[float, float, float, float]] = {
    "unist": (1.06, 0.0423, 3.00, 1.38), "adapter": (1.08, 0.0432, 2.65, 1.17), "full": (2.06, 0.0745, 2.51, 1.06),
}


def _parse(text: str) -> dict[str, dict[str, tuple[float, float]]]:
    """row -> dataset -> (RMSE, MAE); columns without a published figure are left out."""
    lines = text.splitlines()
    datasets = [_COLUMNS[name] for name in lines[0].split()[1:]]
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for line in lines[1:]:
        row, *numbers = line.split()
        if len(numbers) != 2 * len(datasets):
            raise ValueError(f"paper row {row!r} has {len(numbers)} numbers for {len(datasets)} datasets")
        pairs = zip(map(float, numbers[0::2]), map(float, numbers[1::2]), strict=False)
        table[row] = {dataset: pair for dataset, pair in zip(datasets, pairs, strict=False) if not math.isnan(pair[0])}
    return table


#: Published (RMSE, MAE) by table: ``PAPER["main"]["stvfm"]["taxinyc1"] == (13.79, 4.95)``.
PAPER: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "main": _parse(_MAIN), "ablation": _parse(_ABLATION), "backbones": _parse(_BACKBONES), "video": _parse(_VIDEO),
    "efficiency": {row: {"crowd": figures[2:]} for row, figures in EFFICIENCY.items()},
}


def printed_figure(table: str, row: str, dataset: str) -> tuple[float, float] | None:
    """The paper's (RMSE, MAE) for ``row`` on ``dataset`` in ``table`` as printed, or None where it has none."""
    return PAPER.get(table, {}).get(row, {}).get(protocol_family(dataset))


def paper_figure(table: str, row: str, dataset: str) -> tuple[float, float] | None:
    """The printed figure, or None where it cannot be right: an MAE above its RMSE (MAE <= RMSE for any
    errors; MAU's BikeNYC cell reads 1.28 / 22.1, its row shifted in the paper's Table 2)."""
    figure = printed_figure(table, row, dataset)
    return figure if figure is None or figure[1] <= figure[0] else None


#: Datasets whose errors the paper prints scaled by 10^3, after UniST.
SCALED_BY_THOUSAND = ("crowd", "cellular")


def paper_scale(dataset: str, data_maximum: float | None) -> float:
    """The factor that puts our errors (original units) on the paper's printed scale.

    UniST's code (``train.py``) reports errors in the units of its released JSON files, with no
    factor, so the 10^3 lives only in the printed tables, and the direction follows from the
    data: the paper's Crowd / Cellular errors are of order 1-40, so series of fractions (a
    maximum below 1) had their errors multiplied by 10^3, and series in the thousands divided.
    ``data_maximum`` is the series' maximum as the run's scaler recorded it: the file itself
    decides. 1.0 for every other dataset, or when the maximum is unknown.
    """
    if dataset not in SCALED_BY_THOUSAND or data_maximum is None:
        return 1.0
    return 1e3 if data_maximum < 1.0 else 1e-3
