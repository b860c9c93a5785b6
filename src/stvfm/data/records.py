"""Raw trip or event records (CSV or Parquet) to a grid series of pick-up and drop-off counts.

DuckDB does all the work on records: each file gets its own scan (its layout detected from
its own header), the scans are unioned, and every event (a trip's start, and its end) is
either counted in one interval and cell or rejected for one named reason, in one streaming
aggregation. Memory is bounded by the grid (groups of interval x cell), not by the records;
no Python code touches a row.

Rules, each stated once here and in docs/data.md ("Bring your own records"):

- Cells: column ``floor((lon - west) / (east - west) * W)``, row counted from the north, both
  clamped so the east and north box edges belong to the last cell (numpy.histogram's rule:
  half-open cells, the last one closed). A point on an inner edge goes east / north.
- Time: counts are in local wall-clock time of ``time_zone``. Text and naive timestamps are
  read as local wall-clock times (every public layout writes them so); times with a UTC
  offset (Parquet ``TIMESTAMP WITH TIME ZONE``, text ending in ``Z`` or ``+hh:mm``) are
  converted to local time first. Every local day has 24 h of slots: on the spring-forward
  day the skipped hour's slots exist and are 0 (unless a record is stamped in them); on the
  fall-back day the repeated hour's slots hold both passes (naive times cannot tell them
  apart). The slots concerned are listed in the metadata (``dst``).
- Inferred box and period exclude gross outliers: on each axis (longitude, latitude, day of
  pick-up) values are binned (0.01 degree, one day); the range between the 1st and 99th
  percentile bins, widened by that range on each side, is kept; the box (period) spans the
  kept values, which the excluded ones lie entirely outside. The exclusions are reported.
"""

from __future__ import annotations

import glob
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from stvfm.data.checksums import sha256_of
from stvfm.data.series import MINUTES_PER_DAY, GridSeries
from stvfm.data.sources.generic import save_generic_npz
from stvfm.errors import ConfigError, DataError

START_TIME, END_TIME = "start_time", "end_time"
START_LON, START_LAT, END_LON, END_LAT = "start_lon", "start_lat", "end_lon", "end_lat"
START_ZONE, END_ZONE = "start_zone", "end_zone"
ROLES = (START_TIME, END_TIME, START_LON, START_LAT, END_LON, END_LAT, START_ZONE, END_ZONE)
CHANNELS = ("pickups", "dropoffs")

#: Why an event is not counted, in the order the checks apply (an event gets the first that fits).
REASONS = {
    "malformed_row": "a CSV line that does not split into the header's columns (both events lost)",
    "unparseable_time": "time missing or in no known format",
    "end_before_start": "the trip ends before it starts (both events dropped)",
    "unknown_zone": "a zone id the zone table does not hold",
    "missing_place": "coordinates or zone id missing",
    "zero_coordinates": "latitude or longitude exactly 0",
    "outside_box": "outside the box (an inferred box: beyond the outlier fences)",
    "outside_period": "outside the period",
}

#: Text time formats tried in order (then ISO 8601 with or without offset); month before day.
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S")
_OFFSET_PATTERN = "(Z|[+-][0-9]{2}:?[0-9]{2})$"

#: Mean Earth radius (IUGG), for metres per degree on a sphere (equirectangular, at the box's mid-latitude).
EARTH_RADIUS_METRES = 6_371_008.8
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_METRES / 180

#: Outlier fences for an inferred box or period: bin width per axis and the percentile pair.
COORDINATE_BIN_DEGREES = 0.01
FENCE_QUANTILES = (0.01, 0.99)

_EPOCH = datetime(1970, 1, 1)

RECORD_SUFFIXES = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Layout:
    """A published header, role -> column name; names match case-, space- and underscore-blind."""

    name: str
    columns: Mapping[str, str]
    about: str


def _trip_layout(name: str, about: str, times: tuple[str, str], places: tuple[str, ...]) -> Layout:
    roles = (START_LON, START_LAT, END_LON, END_LAT) if len(places) == 4 else (START_ZONE, END_ZONE)
    return Layout(name, {START_TIME: times[0], END_TIME: times[1], **dict(zip(roles, places, strict=True))}, about)


_TLC_COORDINATES = ("pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude")
_TLC_ZONES = ("PULocationID", "DOLocationID")
#: Detection takes the first layout whose columns a file has (coordinates before zones).
LAYOUTS = (
    _trip_layout("citibike", "Citi Bike 2013-2021 (`starttime`, and `Start Time` in 2016-17)", ("starttime", "stoptime"),
                 ("start station longitude", "start station latitude", "end station longitude", "end station latitude")),
    _trip_layout("citibike-2021", "Citi Bike since February 2021", ("started_at", "ended_at"),
                 ("start_lng", "start_lat", "end_lng", "end_lat")),
    _trip_layout("tlc-2009", "NYC TLC yellow taxi 2009", ("Trip_Pickup_DateTime", "Trip_Dropoff_DateTime"),
                 ("Start_Lon", "Start_Lat", "End_Lon", "End_Lat")),
    _trip_layout("tlc-yellow", "NYC TLC yellow taxi 2011 to June 2016",
                 ("tpep_pickup_datetime", "tpep_dropoff_datetime"), _TLC_COORDINATES),
    _trip_layout("tlc-green", "NYC TLC green taxi 2013 to June 2016",
                 ("lpep_pickup_datetime", "lpep_dropoff_datetime"), _TLC_COORDINATES),
    _trip_layout("tlc-2010", "NYC TLC yellow taxi 2010", ("pickup_datetime", "dropoff_datetime"), _TLC_COORDINATES),
    _trip_layout("tlc-yellow-zones", "NYC TLC yellow taxi since July 2016 (needs a zone table)",
                 ("tpep_pickup_datetime", "tpep_dropoff_datetime"), _TLC_ZONES),
    _trip_layout("tlc-green-zones", "NYC TLC green taxi since July 2016 (needs a zone table)",
                 ("lpep_pickup_datetime", "lpep_dropoff_datetime"), _TLC_ZONES),
    _trip_layout("tlc-fhv-zones", "NYC TLC for-hire vehicles (FHV, HVFHV; needs a zone table)",
                 ("pickup_datetime", "dropoff_datetime"), _TLC_ZONES),
)


def normalise_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class Box:
    west: float
    south: float
    east: float
    north: float

    def __post_init__(self) -> None:
        if not (-180 <= self.west < self.east <= 180 and -90 <= self.south < self.north <= 90):
            raise ConfigError(f"box {self.as_list()} is not west < east within [-180, 180] and south < north "
                              "within [-90, 90] (order: west,south,east,north)")

    def as_list(self) -> list[float]:
        return [self.west, self.south, self.east, self.north]

    def cell_metres(self, shape: tuple[int, int]) -> tuple[float, float]:
        """Cell height and width in metres (sphere, equirectangular at the mid-latitude)."""
        per_lon = METRES_PER_DEGREE * math.cos(math.radians((self.south + self.north) / 2))
        return (self.north - self.south) * METRES_PER_DEGREE / shape[0], (self.east - self.west) * per_lon / shape[1]

    def fitted_to_cells(self, cell_metres: float) -> tuple[Box, tuple[int, int]]:
        """Whole cells of ``cell_metres``: the box grows north, then east (at the grown box's mid-latitude)."""
        rows = max(1, math.ceil((self.north - self.south) * METRES_PER_DEGREE / cell_metres - 1e-9))
        north = self.south + rows * cell_metres / METRES_PER_DEGREE
        per_lon = METRES_PER_DEGREE * math.cos(math.radians((self.south + north) / 2))
        cols = max(1, math.ceil((self.east - self.west) * per_lon / cell_metres - 1e-9))
        east = self.west + cols * cell_metres / per_lon
        if north > 90 or east > 180:
            raise ConfigError(f"box {self.as_list()} with {cell_metres} m cells passes the pole or the antimeridian")
        return Box(self.west, self.south, east, north), (rows, cols)


def parse_box(text: str) -> Box:
    parts = text.split(",")
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 4 or not all(math.isfinite(number) for number in numbers):
        raise ConfigError(f"--bbox {text!r}: expected four numbers west,south,east,north (degrees)")
    return Box(*numbers)


def parse_shape(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise ConfigError(f"--grid {text!r}: expected ROWSxCOLS with positive whole numbers, e.g. 16x8")
    return int(match[1]), int(match[2])


def parse_interval(text: str) -> int:
    """Minutes of ``15min``, ``30m``, ``1h``, ``1d``; must divide a day so slots align with midnight."""
    match = re.fullmatch(r"\s*(\d+)\s*(min|m|h|d)\s*", text.lower())
    minutes = int(match[1]) * {"min": 1, "m": 1, "h": 60, "d": MINUTES_PER_DAY}[match[2]] if match else 0
    if minutes < 1 or MINUTES_PER_DAY % minutes:
        raise ConfigError(f"--interval {text!r}: expected a whole number of minutes (15min, 30min, 1h, 1d) "
                          "that divides a day")
    return minutes


def parse_local_time(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected an ISO date or date-time (local time), e.g. 2017-11-01") from None
    if value.tzinfo is not None:
        raise ConfigError(f"{option} {text!r}: give local wall-clock time without an offset (the zone is --tz)")
    return value


def parse_outage(text: str) -> tuple[datetime, datetime]:
    """``START/END`` in local time, end exclusive (``--outage``)."""
    first, separator, last = text.partition("/")
    if not separator:
        raise ConfigError(f"--outage {text!r}: expected START/END in local time, e.g. 2017-12-03T06:00/2017-12-04")
    return parse_local_time(first, "--outage"), parse_local_time(last, "--outage")


def _time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--tz {name!r}: not an IANA time zone name (e.g. America/New_York, Europe/Paris, UTC)") from None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def expand_sources(patterns: Sequence[str]) -> list[Path]:
    """Paths and globs to an ordered list of record files, each existing and of a known kind."""
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise DataError(f"{pattern}: no file matches")
        for match in map(Path, matches):
            if not match.is_file():
                raise DataError(f"{match}: file not found" if not match.exists() else f"{match}: not a regular file")
            if _file_kind(match) is None:
                raise DataError(f"{match}: unknown record file type; use CSV (.csv, .csv.gz) or Parquet (.parquet)"
                                + (" (unzip it first)" if match.suffix.lower() == ".zip" else ""))
            if match not in files:
                files.append(match)
    if not files:
        raise ConfigError("no record files given")
    return files


def _file_kind(path: Path) -> str | None:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst"):
        suffixes = suffixes[:-1]
    return RECORD_SUFFIXES.get(suffixes[-1]) if suffixes else None


@dataclass(frozen=True)
class ZoneTable:
    """Zone id -> the one point its records are placed at."""

    path: Path
    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    rule: str


def read_zone_table(path: str | Path) -> ZoneTable:
    """A CSV of zone id and centroid, or a GeoJSON of zone polygons (their representative points)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: zone table not found")
    if path.suffix.lower() in (".geojson", ".json"):
        return _geojson_zones(path)
    return _csv_zones(path)


_ZONE_ID_NAMES = ("locationid", "zoneid", "zone", "id")
_LON_NAMES = ("lon", "lng", "longitude", "centroidlon", "x")
_LAT_NAMES = ("lat", "latitude", "centroidlat", "y")


def _pick(names: Sequence[str], wanted: Sequence[str], where: Path, what: str) -> str:
    by_normal = {normalise_name(name): name for name in names}
    for candidate in wanted:
        if candidate in by_normal:
            return by_normal[candidate]
    raise DataError(f"{where}: no {what} column (looked for {', '.join(wanted)}; found {', '.join(names)})")


def _csv_zones(path: Path) -> ZoneTable:
    import duckdb

    reader = f"read_csv({_literal(str(path))}, header=true, all_varchar=true, ignore_errors=true)"
    try:
        connection = duckdb.connect()
        names = [row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
        id_column, lon_column, lat_column = (_pick(names, wanted, path, what) for wanted, what in (
            (_ZONE_ID_NAMES, "zone id"), (_LON_NAMES, "longitude"), (_LAT_NAMES, "latitude")))
        fields = ", ".join(f"try_cast({_quote(column)} AS DOUBLE)" for column in (id_column, lon_column, lat_column))
        table = connection.execute(f"SELECT {fields} FROM {reader}").fetchnumpy()
    except duckdb.Error as error:
        raise DataError(f"{path}: not a readable zone table ({str(error).splitlines()[0]})") from None
    ids, lon, lat = (np.ma.filled(np.ma.asarray(array, dtype=float), np.nan) for array in table.values())
    if np.isnan(ids).any() or np.isnan(lon).any() or np.isnan(lat).any():
        raise DataError(f"{path}: zone ids and coordinates must all be numbers")
    return _zone_table(path, ids, lon, lat, "zone centroid from the table")


def _geojson_zones(path: Path) -> ZoneTable:
    from shapely.geometry import shape

    try:
        features = json.loads(path.read_text())["features"]
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{path}: not a GeoJSON FeatureCollection") from None
    ids, lon, lat = [], [], []
    for number, feature in enumerate(features):  # zones, a few hundred: not records
        properties = feature.get("properties") or {}
        key = next((name for name in properties if normalise_name(name) in _ZONE_ID_NAMES), None)
        zone_id = properties[key] if key is not None else feature.get("id")
        try:
            ids.append(float(zone_id))
            point = shape(feature["geometry"]).representative_point()
        except (TypeError, ValueError, KeyError, AttributeError):
            raise DataError(f"{path}: feature {number} needs a numeric zone id (LocationID, zone_id or id) "
                            "and a polygon geometry") from None
        lon.append(point.x)
        lat.append(point.y)
    return _zone_table(path, np.array(ids), np.array(lon), np.array(lat),
                       "representative point of the zone polygon (inside it; shapely)")


def _zone_table(path: Path, ids: np.ndarray, lon: np.ndarray, lat: np.ndarray, rule: str) -> ZoneTable:
    if len(ids) == 0:
        raise DataError(f"{path}: the zone table holds no zones")
    if len(np.unique(ids)) != len(ids):
        raise DataError(f"{path}: zone ids repeat")
    return ZoneTable(path, ids, lon, lat, rule)


@dataclass(frozen=True)
class SourceFile:
    """One record file, its kind, detected layout and the column of each role."""

    path: Path
    kind: str
    layout: str
    columns: dict[str, str]
    types: dict[str, str]

    @property
    def has_end(self) -> bool:
        return END_TIME in self.columns

    @property
    def zoned(self) -> bool:
        return START_ZONE in self.columns


def _complete(columns: Mapping[str, str]) -> bool:
    return START_TIME in columns and (START_ZONE in columns or {START_LON, START_LAT} <= columns.keys())


def detect_layout(path: Path, header: Sequence[str], overrides: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The file's layout and role -> column; named columns (``overrides``) win over detection."""
    by_normal = {normalise_name(name): name for name in header}
    given = {}
    for role, name in overrides.items():
        column = name if name in header else by_normal.get(normalise_name(name))
        if column is None:
            raise DataError(f"{path}: no column {name!r} (given as --{role.replace('_', '-')}); "
                            f"its columns are {', '.join(header) or 'none'}")
        given[role] = column
    for part, roles in (("", ROLES), (" (starts only)", (START_TIME, START_LON, START_LAT, START_ZONE))):
        for layout in LAYOUTS:  # whole layouts first, then event records with a layout's start columns only
            wanted = {role: normalise_name(name) for role, name in layout.columns.items()
                      if role in roles and role not in given}
            if all(name in by_normal for name in wanted.values()):
                return layout.name + part, {**{role: by_normal[name] for role, name in wanted.items()}, **given}
    if _complete(given):
        return "named columns", given
    known = "; ".join(f"{layout.name}: {', '.join(layout.columns.values())}" for layout in LAYOUTS)
    raise DataError(f"{path}: columns {', '.join(header) or 'none'} match no known layout ({known}); "
                    "name them with --start-time, --start-lon, --start-lat (or --start-zone) and the end options")


def _check_pairs(source: SourceFile) -> None:
    columns = source.columns
    for prefix in ("start", "end"):
        has = [f"{prefix}_{part}" in columns for part in ("lon", "lat")]
        if any(has) and not all(has):
            raise DataError(f"{source.path}: {prefix} longitude and latitude must both be named")
    if (END_TIME in columns) != (END_ZONE in columns or END_LON in columns):
        raise DataError(f"{source.path}: an end time needs an end place and an end place an end time")
    if (START_ZONE in columns and END_LON in columns) or (START_LON in columns and END_ZONE in columns):
        raise DataError(f"{source.path}: start and end places must both be coordinates or both be zones")


def _rejects(number: int) -> str:
    return f"rejects_table='grid_rejects_{number}', rejects_scan='grid_reject_scans_{number}'"


class _Scans:
    """SQL for each file's rows as (file, t0, t1, x0, y0, x1, y1, unknown0, unknown1)."""

    def __init__(self, sources: Sequence[SourceFile], time_zone: str, time_format: str | None, has_end: bool):
        self.sources, self.time_zone, self.time_format, self.has_end = sources, time_zone, time_format, has_end

    def reader(self, source: SourceFile, rejects: str) -> str:
        path = _literal(str(source.path))
        if source.kind == "parquet":
            return f"read_parquet({path})"
        return f"read_csv({path}, header=true, all_varchar=true, {rejects})"

    def time(self, source: SourceFile, role: str) -> str:
        column, kind = _quote(source.columns[role]), source.types[role].upper()
        zone = _literal(self.time_zone)
        if kind.startswith("TIMESTAMP WITH TIME ZONE"):
            return f"timezone({zone}, {column})"
        if kind.startswith("TIMESTAMP") or kind == "DATE":
            return f"CAST({column} AS TIMESTAMP)"
        if kind != "VARCHAR":
            raise DataError(f"{source.path}: column {source.columns[role]!r} holds {kind}, not times "
                            "(text or timestamps)")
        if self.time_format:
            return f"try_strptime({column}, {_literal(self.time_format)})"
        formats = "[" + ", ".join(_literal(form) for form in TIME_FORMATS) + "]"
        return (f"coalesce(try_strptime({column}, {formats}), "
                f"CASE WHEN regexp_matches({column}, {_literal(_OFFSET_PATTERN)}) "
                f"THEN timezone({zone}, try_cast({column} AS TIMESTAMPTZ)) END, "
                f"try_cast({column} AS TIMESTAMP))")

    def select(self, number: int, source: SourceFile, rejects: str) -> str:
        reader = self.reader(source, rejects)
        fields = [f"{number} AS file", f"{self.time(source, START_TIME)} AS t0"]
        ends = ("1",) if self.has_end else ()
        if self.has_end:
            fields.append(f"{self.time(source, END_TIME)} AS t1")
        if source.zoned:
            zone_ids = ", ".join(f"try_cast({_quote(source.columns[role])} AS DOUBLE) AS __zone{index}"
                                 for index, role in enumerate((START_ZONE, END_ZONE)[: 1 + len(ends)]))
            joins = " ".join(f"LEFT JOIN zones z{index} ON z{index}.id = r.__zone{index}" for index in ("0", *ends))
            for index in ("0", *ends):
                fields += [f"z{index}.lon AS x{index}", f"z{index}.lat AS y{index}",
                           f"(r.__zone{index} IS NOT NULL AND z{index}.id IS NULL) AS unknown{index}"]
            return f"SELECT {', '.join(fields)} FROM (SELECT *, {zone_ids} FROM {reader}) r {joins}"
        for index, prefix in (("0", "start"), *((("1", "end"),) if ends else ())):
            fields += [f"try_cast({_quote(source.columns[prefix + '_lon'])} AS DOUBLE) AS x{index}",
                       f"try_cast({_quote(source.columns[prefix + '_lat'])} AS DOUBLE) AS y{index}",
                       f"false AS unknown{index}"]
        return f"SELECT {', '.join(fields)} FROM {reader}"

    def events(self, rejects: bool) -> str:
        """Every event as (file, channel, t, x, y, unknown, reversed): a trip crossed with its channels."""
        selects = [self.select(number, source, _rejects(number) if rejects else "ignore_errors=true")
                   for number, source in enumerate(self.sources)]
        trips = "\nUNION ALL\n".join(selects)
        if not self.has_end:
            return (f"SELECT file, 0 AS channel, t0 AS t, x0 AS x, y0 AS y, unknown0 AS unknown, false AS reversed "
                    f"FROM ({trips})")
        pick = ", ".join(f"CASE channel WHEN 0 THEN {name}0 ELSE {name}1 END AS {alias}"
                         for name, alias in (("t", "t"), ("x", "x"), ("y", "y"), ("unknown", "unknown")))
        return (f"SELECT file, channel, {pick}, coalesce(t1 < t0, false) AS reversed "
                f"FROM ({trips}) CROSS JOIN (VALUES (0), (1)) AS channels(channel)")


def _classify(events: str, box: Box | None, period: tuple[datetime, datetime] | None) -> str:
    """SQL: each event with its reason (NULL when it counts); box / period checks only where known."""
    checks = [
        ("t IS NULL", "unparseable_time"),
        ("reversed", "end_before_start"),
        ("unknown", "unknown_zone"),
        ("x IS NULL OR y IS NULL", "missing_place"),
        ("x = 0 OR y = 0", "zero_coordinates"),
    ]
    if box is not None:
        checks.append((f"NOT (x >= {box.west!r} AND x <= {box.east!r} AND y >= {box.south!r} AND y <= {box.north!r})",
                       "outside_box"))
    if period is not None:
        checks.append((f"t < TIMESTAMP '{period[0]}' OR t >= TIMESTAMP '{period[1]}'", "outside_period"))
    cases = " ".join(f"WHEN {condition} THEN '{reason}'" for condition, reason in checks)
    return f"SELECT *, CASE {cases} END AS reason FROM ({events})"


@dataclass
class _Fence:
    """What an inferred axis kept: its range, how many values it saw and how many lay beyond the fences."""

    low: float
    high: float
    values: int
    beyond: int
    fences: tuple[float, float]

    def report(self, axis: str) -> dict:
        """The fences in the axis's units: degrees, or the first and the day after the last kept day."""
        if axis == "day":
            bounds = [(_EPOCH + timedelta(days=bound)).date().isoformat() for bound in self.fences]
        else:
            bounds = [round(bound * COORDINATE_BIN_DEGREES, 6) for bound in self.fences]
        return {"values": self.values, "beyond": self.beyond, "fences": bounds}


def _fenced(keys: np.ndarray, counts: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> _Fence:
    order = np.argsort(keys)
    keys, counts, lows, highs = keys[order], counts[order], lows[order], highs[order]
    cumulative = np.cumsum(counts) / counts.sum()
    first, last = (keys[np.searchsorted(cumulative, quantile)] for quantile in FENCE_QUANTILES)
    span = max(last - first, 1)
    kept = (keys >= first - span) & (keys <= last + span)
    return _Fence(float(lows[kept].min()), float(highs[kept].max()), int(counts.sum()), int(counts[~kept].sum()),
                  (float(first - span), float(last + span + 1)))


def _infer(connection, scans: _Scans, box: Box | None, period: tuple[datetime, datetime] | None):
    """One pass over the records: the box and period they span, gross outliers fenced out."""
    valid = _classify(scans.events(rejects=False), box, period)
    rows = connection.execute(f"""
        SELECT grouping(lon_bin, lat_bin, day) AS grouping_set, lon_bin, lat_bin, day, count(*) AS n,
               min(x) AS x_low, max(x) AS x_high, min(y) AS y_low, max(y) AS y_high
        FROM (SELECT channel, x, y, floor(x / {COORDINATE_BIN_DEGREES}) AS lon_bin, floor(y / {COORDINATE_BIN_DEGREES}) AS lat_bin,
                     CASE WHEN channel = 0 THEN datediff('day', DATE '1970-01-01', t) END AS day
              FROM ({valid}) WHERE reason IS NULL)
        GROUP BY GROUPING SETS ((lon_bin), (lat_bin), (day))""").fetchnumpy()
    sets = np.asarray(rows["grouping_set"])
    inferred = {}
    for axis, grouping_set, key, low, high in (("lon", 0b011, "lon_bin", "x_low", "x_high"),
                                               ("lat", 0b101, "lat_bin", "y_low", "y_high"),
                                               ("day", 0b110, "day", "day", "day")):
        chosen = (sets == grouping_set) & ~np.ma.getmaskarray(rows[key])  # drop-offs have no day
        if chosen.any():
            inferred[axis] = _fenced(*(np.ma.getdata(rows[name])[chosen].astype(float) for name in (key, "n", low, high)))
    return inferred


@dataclass
class GriddedRecords:
    """What ``grid_records`` made: the series (also written to ``output``) and its metadata."""

    series: GridSeries
    metadata: dict
    output: Path
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(sum(per_channel.values()) for per_channel in self.rejected.values())


def _dst_slots(zone: ZoneInfo, start: datetime, end: datetime, interval: int) -> dict[str, list[str]]:
    """Local slots that hold a skipped or a repeated wall-clock minute (the DST change days)."""
    skipped, repeated = set(), set()
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:  # days of the period, a few thousand at most: not records
        following = day + timedelta(days=1)
        if day.replace(tzinfo=zone).utcoffset() != following.replace(tzinfo=zone).utcoffset() or \
                day.replace(tzinfo=zone).dst() != following.replace(tzinfo=zone).dst():
            for minute in range(MINUTES_PER_DAY):
                local = day + timedelta(minutes=minute)
                if not start <= local < end:
                    continue
                slot = local - timedelta(minutes=(local.hour * 60 + local.minute) % interval)
                aware = local.replace(tzinfo=zone)
                if aware.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None) != local:
                    skipped.add(slot)
                elif aware.utcoffset() != local.replace(tzinfo=zone, fold=1).utcoffset():
                    repeated.add(slot)
        day = following
    return {"skipped": [slot.isoformat() for slot in sorted(skipped)],
            "repeated": [slot.isoformat() for slot in sorted(repeated)]}


def grid_records(
    sources: Sequence[str | Path],
    output: str | Path,
    *,
    time_zone: str,
    interval_minutes: int = 60,
    shape: tuple[int, int] | None = None,
    cell_metres: float | None = None,
    box: Box | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    columns: Mapping[str, str] | None = None,
    zones: str | Path | None = None,
    time_format: str | None = None,
    strict: bool = False,
    outages: Sequence[tuple[datetime, datetime]] = (),
    silence_minutes: int | None = None,
    command: str = "",
) -> GriddedRecords:
    """Count the records' pick-ups (and drop-offs) per interval and cell; write the generic npz atomically.

    Give ``shape`` (rows, cols) or ``cell_metres``; ``box``, ``start`` and ``end`` (local,
    end exclusive) are inferred from the records when left out. ``strict`` makes any
    rejected event an error, before anything is written. Slots inside ``outages`` (local, end
    exclusive) and runs of whole-grid silence lasting ``silence_minutes`` or more are written as
    missing (NaN), not as 0: a feed that was down observed nothing.
    """
    import duckdb

    zone = _time_zone(time_zone)
    if (shape is None) == (cell_metres is None):
        raise ConfigError("give the grid as --grid ROWSxCOLS or --cell-metres M (one of them)")
    if cell_metres is not None and not (math.isfinite(cell_metres) and cell_metres > 0):
        raise ConfigError(f"--cell-metres {cell_metres}: expected a positive number of metres")
    if MINUTES_PER_DAY % interval_minutes:
        raise ConfigError(f"interval {interval_minutes} min does not divide a day")
    for bound, option in ((start, "--start"), (end, "--end")):
        if bound is not None and (bound.second or bound.microsecond or (bound.hour * 60 + bound.minute) % interval_minutes):
            raise ConfigError(f"{option} {bound}: not on a {interval_minutes}-minute slot boundary from midnight")
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"--end {end} is not after --start {start}")
    for first, last in outages:
        if last <= first:
            raise ConfigError(f"--outage {first.isoformat()}/{last.isoformat()}: its end is not after its start")
    if silence_minutes is not None and silence_minutes < interval_minutes:
        raise ConfigError(f"--silence-minutes {silence_minutes}: shorter than one {interval_minutes}-minute slot")
    unknown_roles = set(columns or {}) - set(ROLES)
    if unknown_roles:
        raise ConfigError(f"unknown column roles {sorted(unknown_roles)}; known: {', '.join(ROLES)}")
    output = Path(output)
    if output.suffix.lower() != ".npz":
        raise ConfigError(f"{output}: the output is a generic .npz file; give a name ending in .npz")

    files = expand_sources([str(source) for source in sources])
    zone_table = read_zone_table(zones) if zones is not None else None
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET preserve_insertion_order = false")
    try:
        parsed = [_describe(connection, path, columns or {}) for path in files]
        has_end = {source.has_end for source in parsed}
        if len(has_end) > 1:
            without = next(source for source in parsed if not source.has_end)
            raise DataError(f"{without.path}: has no end time/place while other files have them; "
                            "grid files of one kind together")
        for source in parsed:
            if source.zoned and zone_table is None:
                raise DataError(f"{source.path}: layout {source.layout} gives zone ids; pass --zones with a zone "
                                "table (CSV of id, lon, lat or GeoJSON of zone polygons)")
        if zone_table is not None:
            connection.execute("CREATE TABLE zones (id DOUBLE, lon DOUBLE, lat DOUBLE)")
            connection.executemany("INSERT INTO zones VALUES (?, ?, ?)",
                                   np.column_stack([zone_table.ids, zone_table.lon, zone_table.lat]).tolist())
        scans = _Scans(parsed, time_zone, time_format, has_end.pop())
        channels = CHANNELS if scans.has_end else CHANNELS[:1]
        period = (start, end) if start is not None and end is not None else None
        inference = {}
        if box is None or period is None:
            inference = _infer(connection, scans, box, period)
            if box is None:
                if "lon" not in inference:
                    raise DataError(f"{files[0]}: no record has usable coordinates to infer the box from; give --bbox")
                lon, lat = inference["lon"], inference["lat"]
                if lon.low == lon.high or lat.low == lat.high:
                    raise DataError(f"{files[0]}: the records' places span no width or height; give --bbox")
                box = Box(lon.low, lat.low, lon.high, lat.high)
            if period is None:
                if "day" not in inference and (start is None or end is None):
                    raise DataError(f"{files[0]}: no record has a readable time in the box to infer the period "
                                    "from; give --start and --end")
                first_day = _EPOCH + timedelta(days=inference["day"].low) if "day" in inference else None
                last_day = _EPOCH + timedelta(days=inference["day"].high + 1) if "day" in inference else None
                period = (start or first_day, end or last_day)
                if period[1] <= period[0]:
                    raise ConfigError(f"period {period[0]} to {period[1]} is empty; check --start / --end")
        if cell_metres is not None:
            box, shape = box.fitted_to_cells(cell_metres)
        counts, rejected, rows = _count(connection, scans, box, period, shape, interval_minutes, len(channels))
        rejected = {reason: dict(zip(channels, per_channel.tolist(), strict=True)) for reason, per_channel in rejected.items()}
    except duckdb.Error as error:
        where = ", ".join(str(path) for path in files[:3]) + (" ..." if len(files) > 3 else "")
        raise DataError(f"{where}: {str(error).strip().splitlines()[0][:300]}") from None
    finally:
        connection.close()

    total_rejected = sum(sum(per.values()) for per in rejected.values())
    if strict and total_rejected:
        summary = ", ".join(f"{reason} {sum(per.values())}" for reason, per in rejected.items() if sum(per.values()))
        raise DataError(f"{files[0] if len(files) == 1 else f'{len(files)} files'}: {total_rejected} events rejected "
                        f"({summary}); --strict refuses dirty records")
    interval = timedelta(minutes=interval_minutes)
    steps = (period[1] - period[0]) // interval
    timestamps = np.datetime64(period[0], "s") + np.arange(steps) * np.timedelta64(interval_minutes * 60, "s")
    values, unobserved = _mark_unobserved(counts.astype(np.float32), timestamps, outages, silence_minutes,
                                          interval_minutes)
    metadata = {
        "made_by": "stvfm data grid",
        "command": command,
        "sources": [{"path": str(source.path), "sha256": sha256_of(source.path), "layout": source.layout,
                     "columns": source.columns, "rows": rows[number]} for number, source in enumerate(parsed)],
        "zones": None if zone_table is None else {"path": str(zone_table.path), "sha256": sha256_of(zone_table.path),
                                                  "zones": len(zone_table.ids), "place": zone_table.rule},
        "box": {"west": box.west, "south": box.south, "east": box.east, "north": box.north,
                "inferred": "lon" in inference},
        "grid": {"rows": shape[0], "cols": shape[1], "row_order": "north to south",
                 "cell_metres": [round(size, 3) for size in box.cell_metres(shape)]},
        "interval_minutes": interval_minutes,
        "time_zone": time_zone,
        "period": {"start": period[0].isoformat(), "end": period[1].isoformat(), "end_exclusive": True,
                   "inferred": "day" in inference and (start is None or end is None)},
        "outlier_fences": {axis: fence.report(axis) for axis, fence in inference.items()},
        "kept": {channel: int(counts[:, index].sum()) for index, channel in enumerate(channels)},
        "rejected": rejected,
        "dst": _dst_slots(zone, period[0], period[1], interval_minutes),
        "unobserved": unobserved,
        "engine": f"duckdb {duckdb.__version__}",
    }
    series = GridSeries(name=output.stem, values=values, timestamps=timestamps,
                        interval_minutes=interval_minutes, channel_names=channels, source=str(output),
                        attrs={"metadata": metadata})
    save_generic_npz(series, output, metadata=metadata)
    return GriddedRecords(series, metadata, output, rejected)


def _mark_unobserved(values: np.ndarray, timestamps: np.ndarray, outages: Sequence[tuple[datetime, datetime]],
                     silence_minutes: int | None, interval_minutes: int) -> tuple[np.ndarray, list[dict]]:
    """The counts with unobserved slots set to NaN, and those slots as ranges with their reason."""
    missing = np.zeros(len(timestamps), dtype=bool)
    ranges = []
    for first, last in outages:
        inside = (timestamps >= np.datetime64(first, "s")) & (timestamps < np.datetime64(last, "s"))
        missing |= inside
        ranges.append({"reason": "outage", "start": first.isoformat(), "end": last.isoformat(), "slots": int(inside.sum())})
    if silence_minutes is not None:
        silent = values.reshape(len(values), -1).sum(axis=1) == 0
        needed = -(-silence_minutes // interval_minutes)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(np.int8), [0]])))
        for begin, stop in zip(edges[0::2], edges[1::2], strict=True):
            if stop - begin >= needed:
                missing[begin:stop] = True
                end = timestamps[stop - 1] + np.timedelta64(interval_minutes * 60, "s")
                ranges.append({"reason": "silence", "start": str(timestamps[begin]), "end": str(end),
                               "slots": int(stop - begin)})
    values[missing] = np.nan
    return values, ranges


def _describe(connection, path: Path, overrides: Mapping[str, str]) -> SourceFile:
    import duckdb

    kind = _file_kind(path)
    reader = f"read_parquet({_literal(str(path))})" if kind == "parquet" else \
        f"read_csv({_literal(str(path))}, header=true, all_varchar=true, ignore_errors=true)"
    try:
        described = connection.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
    except duckdb.Error as error:
        raise DataError(f"{path}: not a readable {kind.upper() if kind == 'csv' else 'Parquet'} file "
                        f"({str(error).strip().splitlines()[0][:200]})") from None
    header = [row[0] for row in described]
    layout, columns = detect_layout(path, header, overrides)
    types = {name: kind_ for name, kind_, *_ in described}
    source = SourceFile(path, kind, layout, columns, {role: types[column] for role, column in columns.items()})
    _check_pairs(source)
    return source


def _count(connection, scans: _Scans, box: Box, period: tuple[datetime, datetime], shape: tuple[int, int],
           interval_minutes: int, channels: int):
    """The one counting pass: (T, C, H, W) counts, rejections per reason and channel, rows per file."""
    rows_count, cols_count = shape
    steps = (period[1] - period[0]) // timedelta(minutes=interval_minutes)
    start_us = int((period[0] - _EPOCH) / timedelta(microseconds=1))
    result = connection.execute(f"""
        SELECT file, channel, reason,
               CASE WHEN reason IS NULL THEN (epoch_us(t) - {start_us}) // {interval_minutes * 60_000_000} END AS slot,
               CASE WHEN reason IS NULL THEN {rows_count - 1} - least({rows_count - 1},
                    CAST(floor((y - {box.south!r}) / {box.north - box.south!r} * {rows_count}) AS BIGINT)) END AS row,
               CASE WHEN reason IS NULL THEN least({cols_count - 1},
                    CAST(floor((x - {box.west!r}) / {box.east - box.west!r} * {cols_count}) AS BIGINT)) END AS col,
               count(*) AS n
        FROM ({_classify(scans.events(rejects=True), box, period)})
        GROUP BY ALL""").fetchnumpy()
    file, channel, n, slot, row, col = (np.ma.getdata(result[key]).astype(np.int64)
                                        for key in ("file", "channel", "n", "slot", "row", "col"))
    kept = np.ma.getmaskarray(result["reason"])
    shape = (steps, channels, rows_count, cols_count)
    cells = np.ravel_multi_index((slot[kept], channel[kept], row[kept], col[kept]), shape)
    counts = np.bincount(cells, weights=n[kept], minlength=math.prod(shape)).astype(np.int64).reshape(shape)
    rejected = {reason: np.zeros(channels, dtype=np.int64) for reason in REASONS}
    reasons = np.ma.getdata(result["reason"])
    for reason, channel_index, number in zip(reasons[~kept], channel[~kept], n[~kept], strict=True):  # grouped rows, not records
        rejected[reason][channel_index] += number
    rows = np.bincount(file[channel == 0], weights=n[channel == 0], minlength=len(scans.sources)).astype(np.int64)
    for number, source in enumerate(scans.sources):
        if source.kind != "csv":
            continue
        malformed = connection.execute(
            f"SELECT count(DISTINCT (scan_id, file_id, line)) FROM grid_rejects_{number}").fetchone()[0]
        rejected["malformed_row"] += malformed
        rows[number] += malformed
    return counts, rejected, [int(count) for count in rows]
