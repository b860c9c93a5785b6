"""Registry of the datasets stvfm knows by name: where their files live and what they hold.

Adding a dataset means one ``register_dataset(DatasetSpec(...))`` call; the loaders,
``stvfm data`` and the reproduction runner read everything else from the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from stvfm.data.series import GridSeries
from stvfm.errors import ConfigError

UNIST_DOWNLOAD_PAGE = "https://github.com/tsinghua-fib-lab/UniST/blob/main/dataset/README.md"
UNIST_CITATION = (
    "Yuan, Ding, Jin, Li. UniST: A Prompt-Empowered Universal Model for Urban "
    "Spatio-Temporal Prediction. KDD 2024."
)


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset, relative to the dataset's folder under the data root.

    ``sha256`` is None where no trusted checksum is published (the file is then not
    verified); ``url`` is a direct download link, None where the source only offers a
    download page (a shared drive) that a script cannot fetch.
    """

    path: str
    sha256: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    domain: str
    city: str
    span: str
    grid: tuple[int, int]
    interval_minutes: int
    channel_names: tuple[str, ...]
    source_format: str
    files: tuple[DataFile, ...]
    download_page: str
    citation: str
    #: Date the series starts on (ISO); readers of formats without absolute time use it.
    start: str = ""
    #: Steps the paper's protocol uses (None = the whole series).
    default_steps: int | None = None
    #: Steps the whole series holds, so sizes (window counts) are known without reading the files.
    series_steps: int | None = None
    #: The registered dataset whose files, recipe overrides and paper column this one shares (a
    #: protocol over the same data, e.g. another period); "" for a dataset with files of its own.
    family: str = ""
    #: First and last timestamp (inclusive, ISO, local time of the file) the protocol reads; None = all.
    period: tuple[str, str] | None = None

    @property
    def protocol_steps(self) -> int | None:
        """Steps the paper's protocol reads; None where the series' length is not recorded."""
        return self.default_steps or self.series_steps

    def protocol_period(self, steps: int | None = None) -> tuple[str, str] | None:
        """First and last time step (ISO, to the minute) the protocol reads of ``steps`` (None: its
        default), from the spec alone: what a record written before runs stored their period read."""
        first = self.period[0] if self.period else self.start
        count = steps or self.protocol_steps
        if not first or not count:
            return None
        last = np.datetime64(first, "m") + np.timedelta64((count - 1) * self.interval_minutes, "m")
        return str(np.datetime64(first, "m")), str(last)

    def series(self, values: np.ndarray, timestamps: np.ndarray, source: object, **fields: Any) -> GridSeries:
        """The series a reader found for this dataset: its name, interval and channel names come from
        here, once for every format (``fields`` overrides any of them, adds ``attrs``)."""
        named = {"name": self.name, "interval_minutes": self.interval_minutes, "channel_names": self.channel_names}
        return GridSeries(values=values, timestamps=timestamps, source=str(source), **{**named, **fields})

    @property
    def folder(self) -> str:
        return self.family or self.name

    @property
    def base_name(self) -> str:
        """The dataset this protocol reads: its own name, or the family whose files it shares."""
        return self.family or self.name


_DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in _DATASETS:
        raise ValueError(f"dataset {spec.name!r} registered twice")
    _DATASETS[spec.name] = spec
    return spec


def get_dataset(name: str) -> DatasetSpec:
    key = name.lower()
    if key not in _DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_DATASETS))}")
    return _DATASETS[key]


def is_registered(name: str) -> bool:
    return name.lower() in _DATASETS


def protocol_family(name: str) -> str:
    """The dataset whose files, recipe overrides and paper column ``name`` shares (itself for most)."""
    return get_dataset(name).base_name if is_registered(name) else name


def list_datasets() -> list[DatasetSpec]:
    return sorted(_DATASETS.values(), key=lambda spec: spec.name)


register_dataset(
    DatasetSpec(
        name="bikenyc1",
        title="BikeNYC-1",
        domain="Bike Usage",
        city="NYC",
        span="14.04.01-14.09.30 (the paper's column covers 16.08.01-16.09.29)",
        grid=(16, 8),
        interval_minutes=60,
        channel_names=("new-flow", "end-flow"),
        source_format="stresnet_h5",
        files=(
            DataFile("NYC14_M16x8_T60_NewEnd.h5", "4a4ad6aa703b127b133e2b04f6dfe5b79e9da9805bff7c4ca7da5a1bcbbca772"),
        ),
        download_page="https://1drv.ms/f/s!Akh6N7xv3uVmhOhGxkRDfGTigqAyZw",
        citation=(
            "Zhang, Zheng, Qi. Deep Spatio-Temporal Residual Networks for Citywide Crowd "
            "Flows Prediction. AAAI 2017."
        ),
        start="2014-04-01",
        series_steps=183 * 24,
    )
)

register_dataset(
    DatasetSpec(
        name="taxinyc1",
        title="TaxiNYC-1",
        domain="Taxi OD",
        city="NYC",
        span="16.01.01-16.02.29 (file holds 90 days from 16.01.01)",
        grid=(16, 12),
        interval_minutes=30,
        channel_names=("flow-0", "flow-1"),
        source_format="dsan_npz",
        files=tuple(
            DataFile(path, sha)
            for path, sha in (
                ("flow_train.npz", "a972c671e2916e300c545c48d4b2f4b1f803b8c6e653d1e6eb1b0d27004245d1"),
                ("flow_val.npz", "f9b58bdeeafd8e12d516603cfcbdf5a80c745f4e35614363b06ffcf431d002b5"),
                ("flow_test.npz", "5f1fc043214fcc6f0fbea0de06e9d4ba85d8492d3e7f6c0d322ccfea135ff840"),
                ("ex_knlg_train.npz", "a5d94d0ce922429c0cd5132837cec008116bb7115433d492eeddb2fcfa858de0"),
                ("ex_knlg_val.npz", "f28f2a60160b0b4734819e00c1be86fc17d7853608c90711db3c0309ef7f7ae6"),
                ("ex_knlg_test.npz", "5d551bbd45406716eea8925cdc54409a1ac99b686e6c98c7915ac1ae6827095b"),
            )
        ),
        download_page="https://github.com/haoxingl/DSAN",
        citation=(
            "Lin, Xu, Liu, Yin. Preserving Dynamic Attention for Long-Term Spatial-Temporal "
            "Prediction (DSAN). KDD 2020."
        ),
        start="2016-01-01",
        default_steps=2880,
        series_steps=90 * 48,
    )
)

# The paper's BikeNYC-1 column: 60 days of the same STResNet file (2014-08-01..09-29, hourly),
# the paper's length and season at a third of the 183-day series' cost per epoch.
register_dataset(
    replace(
        _DATASETS["bikenyc1"],
        name="bikenyc1-60d",
        title="BikeNYC-1 (60 days)",
        span="14.08.01-14.09.29 (the paper's 60-day span, its dates from 2014)",
        default_steps=60 * 24,
        family="bikenyc1",
        period=("2014-08-01T00:00", "2014-09-29T23:00"),
    )
)

# UniST's released JSON files, one value channel each; grid, interval and span from the
# paper's Table 1 (which lists TDrive's city as NYC; T-Drive is Beijing taxis).
_UNIST_COLUMNS = ("name", "title", "domain", "city", "span", "grid", "interval_minutes", "stem", "start")
_UNIST_DATASETS = (
    ("crowd", "Crowd", "Crowd Flow", "Nanjing", "20.11.11-21.05.31", (16, 20), 30, "Crowd", "2020-11-11"),
    ("cellular", "Cellular", "Cellular Usage", "Nanjing", "20.11.11-21.05.31", (16, 20), 30, "Cellular", "2020-11-11"),
    ("tdrive", "TDrive", "Taxi Trajectory", "Beijing", "15.02.01-16.06.02", (32, 32), 60, "TDrive", "2015-02-01"),
    ("bikenyc2", "BikeNYC-2", "Bike Usage", "NYC", "16.07.01-16.08.29", (10, 20), 30, "BikeNYC2", "2016-07-01"),
    ("taxinyc2", "TaxiNYC-2", "Taxi OD", "NYC", "15.01.01-15.03.01", (20, 10), 30, "TaxiNYC2", "2015-01-01"),
    ("trafficzz", "TrafficZZ", "Traffic Speed", "Zhengzhou", "22.03.05-22.04.05", (26, 26), 5, "TrafficZZ", "2022-03-05"),
    ("traffictj", "TrafficTJ", "Traffic Speed", "Tianjin", "22.03.05-22.04.05", (24, 30), 5, "TrafficTJ", "2022-03-05"),
    ("trafficsh", "TrafficSH", "Traffic Speed", "Shanghai", "22.01.27-22.02.27", (28, 32), 5, "TrafficSH", "2022-01-27"),
)


def _unist_spec(row: tuple) -> DatasetSpec:
    """A row of ``_UNIST_DATASETS``: its columns are the spec's fields, but for the file's stem."""
    fields = dict(zip(_UNIST_COLUMNS, row, strict=True))
    stem = fields.pop("stem")
    return DatasetSpec(**fields, channel_names=(fields["domain"].lower().replace(" ", "-"),), source_format="unist_json",
                       files=(DataFile(f"{stem}_short.json"),), download_page=UNIST_DOWNLOAD_PAGE, citation=UNIST_CITATION)


for _row in _UNIST_DATASETS:
    register_dataset(_unist_spec(_row))
