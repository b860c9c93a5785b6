"""``stvfm data grid``: records in every supported layout grid back to the count tensor they came from."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from stvfm.cli.main import main
from stvfm.data.records import (
    LAYOUTS,
    REASONS,
    Box,
    grid_records,
    parse_interval,
    parse_outage,
    parse_shape,
)
from stvfm.data.sources import read_generic
from stvfm.errors import ConfigError, DataError

BOX = Box(-74.05, 40.70, -74.00, 40.76)
SHAPE = (3, 4)
START = datetime(2018, 3, 1)
INTERVAL = 30
STEPS = 8
EMPTY_SLOT = 3
LAYOUT = {layout.name: layout for layout in LAYOUTS}

#: How each layout writes its times in the published files.
TIME_STYLE = {
    "citibike": "%-m/%-d/%Y %-H:%M",  # Jersey City 2017: no seconds, no zero padding
    "citibike-2021": "%Y-%m-%d %H:%M:%S.%f",
    "tlc-2009": "%Y-%m-%d %H:%M:%S",
}
TITLE_SPELLING = {"starttime": "Start Time", "stoptime": "Stop Time"}


def known_counts(seed: int) -> np.ndarray:
    """Pick-ups and drop-offs per (slot, cell), each slot with as many drop-offs as pick-ups; one slot empty."""
    rng = np.random.default_rng(seed)
    pickups = rng.integers(0, 3, size=(STEPS, *SHAPE))
    pickups[EMPTY_SLOT] = 0
    dropoffs = np.stack([rng.multinomial(total, np.full(SHAPE[0] * SHAPE[1], 1 / (SHAPE[0] * SHAPE[1]))).reshape(SHAPE)
                         for total in pickups.reshape(STEPS, -1).sum(1)])
    return np.stack([pickups, dropoffs], axis=1)


def trips_from(counts: np.ndarray, seed: int, whole_minutes: bool) -> list[dict]:
    """Each count becomes that many trips at random places in its cell; a trip starts in the slot's first half
    and ends in its second half (so it never ends before it starts)."""
    rng = np.random.default_rng(seed + 1)
    trips = []
    for slot in range(STEPS):
        starts = np.repeat(np.arange(SHAPE[0] * SHAPE[1]), counts[slot, 0].ravel())
        ends = rng.permutation(np.repeat(np.arange(SHAPE[0] * SHAPE[1]), counts[slot, 1].ravel()))
        slot_start = START + timedelta(minutes=slot * INTERVAL)
        for start_cell, end_cell in zip(starts, ends, strict=True):
            unit = 60 if whole_minutes else 1
            half = INTERVAL * 60 // 2 // unit
            trips.append({
                "start": slot_start + timedelta(seconds=int(rng.integers(0, half)) * unit),
                "end": slot_start + timedelta(seconds=(half + int(rng.integers(0, half))) * unit),
                "start_cell": divmod(int(start_cell), SHAPE[1]), "end_cell": divmod(int(end_cell), SHAPE[1]),
            })
    rng.shuffle(trips)
    return trips


def place_in(cell: tuple[int, int], rng: np.random.Generator) -> tuple[float, float]:
    """A random (lon, lat) well inside the cell (row 0 is the northern row)."""
    row, col = cell
    height, width = (BOX.north - BOX.south) / SHAPE[0], (BOX.east - BOX.west) / SHAPE[1]
    u, v = rng.uniform(0.05, 0.95, size=2)
    return float(BOX.west + (col + u) * width), float(BOX.north - (row + v) * height)


def write_records(path: Path, layout_name: str, trips: list[dict], seed: int, *, title_case: bool = False,
                  quoted: bool = False, zone_of=None) -> Path:
    """Trips as a published file of ``layout_name``, filler columns included ('NULL' in one)."""
    rng = np.random.default_rng(seed + 2)
    columns = dict(LAYOUT[layout_name].columns)
    if title_case:  # Citi Bike 2016-17: "Start Time", "Start Station Latitude"
        columns = {role: TITLE_SPELLING.get(name, name.title()) for role, name in columns.items()}
    header = ["tripduration", *columns.values(), "birth year"]
    style = TIME_STYLE.get(layout_name, "%Y-%m-%d %H:%M:%S")
    rows = []
    for trip in trips:
        row = {"tripduration": str(int((trip["end"] - trip["start"]).total_seconds())), "birth year": "NULL"}
        for prefix in ("start", "end"):
            row[columns[f"{prefix}_time"]] = _format(trip[prefix], style)
            if zone_of is not None:
                row[columns[f"{prefix}_zone"]] = str(zone_of[trip[f"{prefix}_cell"]])
            else:
                lon, lat = place_in(trip[f"{prefix}_cell"], rng)
                row[columns[f"{prefix}_lon"]], row[columns[f"{prefix}_lat"]] = repr(lon), repr(lat)
        rows.append(row)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, header, quoting=csv.QUOTE_ALL if quoted else csv.QUOTE_MINIMAL)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _format(moment: datetime, style: str) -> str:
    if "%-" in style:  # no zero padding, as the Jersey City files write it
        return f"{moment.month}/{moment.day}/{moment.year} {moment.hour}:{moment.minute:02d}"
    text = moment.strftime(style)
    return text[:-3] if style.endswith("%f") else text  # milliseconds


def to_parquet(csv_path: Path) -> Path:
    """The same records as typed Parquet (timestamps, doubles, integers), as the TLC publishes them."""
    target = csv_path.with_suffix(".parquet")
    duckdb.execute(f"COPY (SELECT * FROM read_csv('{csv_path}', nullstr='NULL')) TO '{target}' (FORMAT parquet)")
    return target


def zone_tables(tmp_path: Path, seed: int) -> tuple[dict, Path, Path]:
    """One zone per cell (ids 101...) as a CSV of centroids and as a GeoJSON of small squares inside the cells."""
    rng = np.random.default_rng(seed + 3)
    zone_of, rows, features = {}, [], []
    for number, cell in enumerate((row, col) for row in range(SHAPE[0]) for col in range(SHAPE[1])):
        zone_of[cell] = 101 + number
        lon, lat = place_in(cell, rng)
        rows.append({"LocationID": zone_of[cell], "lon": lon, "lat": lat})
        side = 0.1 * (BOX.east - BOX.west) / SHAPE[1]
        ring = [[lon - side, lat - side], [lon + side, lat - side], [lon + side, lat + side], [lon - side, lat + side],
                [lon - side, lat - side]]
        features.append({"type": "Feature", "properties": {"location_id": zone_of[cell], "zone": f"z{number}"},
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    table = tmp_path / "zones.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["LocationID", "lon", "lat"])
        writer.writeheader()
        writer.writerows(rows)
    geojson = tmp_path / "zones.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return zone_of, table, geojson


def grid(files, tmp_path: Path, **options):
    settings = {"time_zone": "America/New_York", "interval_minutes": INTERVAL, "shape": SHAPE, "box": BOX, "start": START,
                    "end": START + timedelta(minutes=STEPS * INTERVAL)}
    return grid_records(files, tmp_path / "grid.npz", **{**settings, **options})


COORDINATE_LAYOUTS = [layout.name for layout in LAYOUTS if "start_lon" in layout.columns]
ZONE_LAYOUTS = [layout.name for layout in LAYOUTS if "start_zone" in layout.columns]


@pytest.mark.parametrize("file_kind", ["csv", "parquet"])
@pytest.mark.parametrize("layout_name", COORDINATE_LAYOUTS)
def test_coordinate_layouts_grid_back_exactly(tmp_path, layout_name, file_kind):
    counts = known_counts(seed=len(layout_name))
    path = write_records(tmp_path / f"{layout_name}.csv", layout_name,
                         trips_from(counts, 7, whole_minutes=layout_name == "citibike"), 7)
    result = grid([to_parquet(path) if file_kind == "parquet" else path], tmp_path)
    assert result.metadata["sources"][0]["layout"] == layout_name
    np.testing.assert_array_equal(result.series.values, counts)
    assert result.rejected_total == 0


@pytest.mark.parametrize("table_kind", ["csv", "geojson"])
@pytest.mark.parametrize("layout_name", ZONE_LAYOUTS)
def test_zone_layouts_grid_back_exactly(tmp_path, layout_name, table_kind):
    counts = known_counts(seed=5)
    zone_of, table, geojson = zone_tables(tmp_path, 5)
    path = write_records(tmp_path / "trips.csv", layout_name, trips_from(counts, 5, False), 5, zone_of=zone_of)
    result = grid([to_parquet(path)], tmp_path, zones=table if table_kind == "csv" else geojson)
    assert result.metadata["sources"][0]["layout"] == layout_name
    np.testing.assert_array_equal(result.series.values, counts)


def test_mixed_layouts_across_files_and_a_header_only_file(tmp_path):
    counts = known_counts(seed=11)
    trips = trips_from(counts, 11, whole_minutes=True)
    thirds = len(trips) // 3
    files = [write_records(tmp_path / "a.csv", "citibike", trips[:thirds], 1),
             write_records(tmp_path / "b.csv", "citibike", trips[thirds:2 * thirds], 2, title_case=True, quoted=True),
             write_records(tmp_path / "c.csv", "citibike-2021", trips[2 * thirds:], 3),
             write_records(tmp_path / "d.csv", "tlc-yellow", [], 4)]
    result = grid([str(tmp_path / "*.csv")], tmp_path)
    np.testing.assert_array_equal(result.series.values, counts)
    assert [source["layout"] for source in result.metadata["sources"]] == ["citibike", "citibike", "citibike-2021",
                                                                            "tlc-yellow"]
    assert [source["rows"] for source in result.metadata["sources"]] == [thirds, thirds, len(trips) - 2 * thirds, 0]
    assert Path(result.metadata["sources"][1]["path"]) == files[1]


def test_an_interval_without_records_is_zero_and_the_period_can_outrun_the_data(tmp_path):
    counts = known_counts(seed=3)
    path = write_records(tmp_path / "t.csv", "tlc-yellow", trips_from(counts, 3, False), 3)
    result = grid([path], tmp_path, end=START + timedelta(minutes=(STEPS + 4) * INTERVAL))
    values = read_generic(tmp_path / "grid.npz").values
    assert values.shape == (STEPS + 4, 2, *SHAPE)
    assert not np.isnan(values).any() and values[EMPTY_SLOT].sum() == 0 and values[STEPS:].sum() == 0
    np.testing.assert_array_equal(values[:STEPS], counts)
    assert result.series.timestamps[-1] == np.datetime64(START + timedelta(minutes=(STEPS + 3) * INTERVAL))


def test_a_header_only_file_gives_zeros_or_asks_for_the_period(tmp_path):
    path = write_records(tmp_path / "empty.csv", "citibike-2021", [], 0)
    result = grid([path], tmp_path)
    assert result.series.values.shape == (STEPS, 2, *SHAPE) and result.series.values.sum() == 0
    with pytest.raises(DataError, match="give --start and --end"):
        grid([path], tmp_path, start=None, end=None)


def write_points(path: Path, points: list[tuple[str, float, float]], header=("started_at", "start_lng", "start_lat")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(points)
    return path


def test_points_on_cell_edges_and_box_edges_follow_numpy_histogram(tmp_path):
    """Dyadic edges (exact in binary): cells are half-open, the last one closed, as numpy.histogram."""
    box = Box(-74.0, 40.5, -73.0, 41.0)  # 2 x 4 cells of 0.25 degree
    points = [(-74.0, 40.5), (-73.0, 41.0), (-73.75, 40.75), (-73.5, 40.5), (-73.25, 41.0), (-73.0, 40.6)]
    path = write_points(tmp_path / "p.csv", [("2018-03-01 00:10:00", lon, lat) for lon, lat in points]
                        + [("2018-03-01 00:20:00", -72.99, 40.6), ("2018-03-01 00:20:00", -74.0, 41.01)],
                        header=("started_at", "start_lng", "start_lat"))
    result = grid_records([path], tmp_path / "g.npz", time_zone="UTC", interval_minutes=60, shape=(2, 4), box=box,
                          columns={"start_time": "started_at", "start_lon": "start_lng", "start_lat": "start_lat"},
                          start=START, end=START + timedelta(hours=1))
    lon, lat = np.array(points).T
    expected, _, _ = np.histogram2d(lat, lon, bins=(2, 4), range=((40.5, 41.0), (-74.0, -73.0)))
    np.testing.assert_array_equal(result.series.values[0, 0], expected[::-1])  # row 0 is the north
    assert result.series.values[0, 0, 0, 1] == 1  # (-73.75, 40.75): on two inner edges, goes east and north
    assert result.rejected["outside_box"] == {"pickups": 2}
    assert result.series.channel_names == ("pickups",)


def test_spring_forward_day_has_24_local_slots(tmp_path):
    naive = write_points(tmp_path / "naive.csv", [("2018-03-11 01:30:00", -74.02, 40.72),
                                                  ("2018-03-11 03:30:00", -74.02, 40.72),
                                                  ("2018-03-11 02:30:00", -74.02, 40.72)])  # a clock not set forward
    aware = tmp_path / "aware.parquet"
    duckdb.execute(f"""COPY (SELECT * FROM (VALUES (TIMESTAMPTZ '2018-03-11 06:30:00+00'),
                                                   (TIMESTAMPTZ '2018-03-11 07:30:00+00')) t(started_at),
                            (VALUES (-74.02, 40.72)) p(start_lng, start_lat)) TO '{aware}' (FORMAT parquet)""")
    options = {"time_zone": "America/New_York", "interval_minutes": 60, "shape": (1, 1), "box": BOX,
                   "start": datetime(2018, 3, 11), "end": datetime(2018, 3, 12),
                   "columns": {"start_time": "started_at", "start_lon": "start_lng", "start_lat": "start_lat"}}
    by_naive = grid_records([naive], tmp_path / "n.npz", **options)
    by_aware = grid_records([aware], tmp_path / "a.npz", **options)
    assert by_naive.series.values.shape[0] == 24
    assert by_naive.series.values[:5, 0, 0, 0].tolist() == [0, 1, 1, 1, 0]
    assert by_aware.series.values[:5, 0, 0, 0].tolist() == [0, 1, 0, 1, 0]  # 06:30Z = 01:30 EST, 07:30Z = 03:30 EDT
    assert by_naive.metadata["dst"] == {"skipped": ["2018-03-11T02:00:00"], "repeated": []}


def test_fall_back_day_merges_the_repeated_hour(tmp_path):
    texts = write_points(tmp_path / "offsets.csv", [("2018-11-04T01:30:00-04:00", -74.02, 40.72),
                                                    ("2018-11-04T01:30:00-05:00", -74.02, 40.72),
                                                    ("2018-11-04T05:59:00Z", -74.02, 40.72)])  # 01:59 EDT
    result = grid_records([texts], tmp_path / "f.npz", time_zone="America/New_York", interval_minutes=30,
                          shape=(1, 1), box=BOX, start=datetime(2018, 11, 4), end=datetime(2018, 11, 5),
                          columns={"start_time": "started_at", "start_lon": "start_lng", "start_lat": "start_lat"})
    values = result.series.values[:, 0, 0, 0]
    assert len(values) == 48 and values[3] == 3 and values.sum() == 3  # 01:30-02:00 local holds both passes
    assert result.metadata["dst"] == {"skipped": [], "repeated": ["2018-11-04T01:00:00", "2018-11-04T01:30:00"]}


DIRTY_TRIPS = [  # (start, end, start lon, start lat, end lon, end lat)
    ("2018-03-01 00:05:00", "2018-03-01 00:15:00", -74.02, 40.72, -74.01, 40.73),  # clean
    ("yesterday", "2018-03-01 00:15:00", -74.02, 40.72, -74.01, 40.73),  # pick-up time unparseable
    ("2018-03-01 00:05:00", "2018-03-01 00:15:00", "NULL", 40.72, -74.01, 40.73),  # pick-up place missing
    ("2018-03-01 00:05:00", "2018-03-01 00:15:00", -74.02, 40.72, 0, 0),  # drop-off at 0, 0
    ("2018-03-01 00:35:00", "2018-03-01 00:15:00", -74.02, 40.72, -74.01, 40.73),  # ends before it starts
    ("2018-03-01 00:05:00", "2018-03-01 00:15:00", -73.02, 40.72, -74.01, 40.73),  # pick-up outside the box
    ("2018-04-01 00:05:00", "2018-04-01 00:15:00", -74.02, 40.72, -74.01, 40.73),  # outside the period
]


def dirty_files(tmp_path: Path) -> list[Path]:
    trips = tmp_path / "trips.csv"
    with open(trips, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["started_at", "ended_at", "start_lng", "start_lat", "end_lng", "end_lat"])
        writer.writerows(DIRTY_TRIPS)
        handle.write("2018-03-01 00:05:00,2018-03-01 00:15:00,-74.02\r\n")  # a malformed line
    zoned = tmp_path / "zoned.csv"
    zoned.write_text("tpep_pickup_datetime,tpep_dropoff_datetime,PULocationID,DOLocationID\n"
                     "2018-03-01 00:05:00,2018-03-01 00:25:00,999,101\n")  # an unknown pick-up zone
    return [trips, zoned]


def test_dirty_records_are_counted_per_reason(tmp_path):
    _, table, _ = zone_tables(tmp_path, 0)
    result = grid(dirty_files(tmp_path), tmp_path, zones=table)
    expected = {reason: {"pickups": 0, "dropoffs": 0} for reason in REASONS}
    for reason, channels in {"malformed_row": ("pickups", "dropoffs"), "unparseable_time": ("pickups",),
                             "missing_place": ("pickups",), "zero_coordinates": ("dropoffs",),
                             "end_before_start": ("pickups", "dropoffs"), "outside_box": ("pickups",),
                             "outside_period": ("pickups", "dropoffs"), "unknown_zone": ("pickups",)}.items():
        for channel in channels:
            expected[reason][channel] = 1
    assert result.rejected == expected
    assert result.metadata["kept"] == {"pickups": 2, "dropoffs": 5}
    assert [source["rows"] for source in result.metadata["sources"]] == [len(DIRTY_TRIPS) + 1, 1]
    stored = read_generic(tmp_path / "grid.npz").attrs["metadata"]
    assert stored["rejected"] == expected and stored["interval_minutes"] == INTERVAL


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


GRID_OPTIONS = ("--tz", "America/New_York", "--grid", "3x4", "--interval", "30min",
                "--bbox", "-74.05,40.70,-74.00,40.76", "--start", "2018-03-01", "--end", "2018-03-01T04:00")


def test_strict_refuses_dirty_records_in_one_line_and_writes_nothing(tmp_path, capsys):
    _, table, _ = zone_tables(tmp_path, 0)
    files = [str(path) for path in dirty_files(tmp_path)]
    output = tmp_path / "out.npz"
    code, _, err = run(capsys, "data", "grid", *files, "-o", str(output), "--zones", str(table), *GRID_OPTIONS,
                       "--strict")
    assert code == 2 and not output.exists()
    assert len(err.strip().splitlines()) == 1 and "11 events rejected" in err and "--strict" in err
    code, out, err = run(capsys, "data", "grid", *files, "-o", str(output), "--zones", str(table), *GRID_OPTIONS)
    assert code == 0, err
    assert "zero_coordinates" in out and output.exists()


def test_grid_then_info_shows_how_the_file_was_made(tmp_path, capsys):
    counts = known_counts(seed=2)
    path = write_records(tmp_path / "jc.csv", "citibike", trips_from(counts, 2, True), 2)
    output = tmp_path / "city.npz"
    two_days = (*GRID_OPTIONS[:-1], "2018-03-03")  # long enough for the protocol's windows
    code, out, err = run(capsys, "data", "grid", str(path), "-o", str(output), *two_days)
    assert code == 0, err
    assert "wrote" in out
    written = read_generic(output)
    np.testing.assert_array_equal(written.values[:STEPS], counts)
    assert written.attrs["metadata"]["command"].startswith(f"stvfm data grid {path} -o {output} --tz America/New_York")
    code, out, err = run(capsys, "data", "info", str(output))
    assert code == 0, err
    assert "how it was made" in out and "America/New_York" in out and "citibike" in out


def test_named_columns_override_detection_and_unknown_headers_fail_in_one_line(tmp_path, capsys):
    counts = known_counts(seed=4)
    path = write_records(tmp_path / "t.csv", "tlc-2009", trips_from(counts, 4, False), 4)
    text = path.read_text().replace("Start_Lon", "x0").replace("Start_Lat", "y0")
    path.write_text(text.replace("Trip_Pickup_DateTime", "when"))
    code, _, err = run(capsys, "data", "grid", str(path), "-o", str(tmp_path / "x.npz"), *GRID_OPTIONS)
    assert code == 2 and str(path) in err and "match no known layout" in err
    result = grid([path], tmp_path, columns={"start_time": "when", "start_lon": "x0", "start_lat": "y0"})
    assert result.metadata["sources"][0]["layout"] == "tlc-2009"  # the end columns are still detected
    np.testing.assert_array_equal(result.series.values, counts)


def test_inferred_box_and_period_fence_out_gross_outliers(tmp_path):
    rng = np.random.default_rng(0)
    points = [(f"2018-03-0{1 + day} {hour:02d}:{minute:02d}:00",  # 144 points: one outlier is under 1%
               *place_in((int(rng.integers(3)), int(rng.integers(4))), rng))
              for day in range(3) for hour in range(24) for minute in (0, 30)]
    points += [("2018-03-02 10:00:00", -73.57, 45.50),  # a test station in Montreal
               ("2099-03-02 10:00:00", -74.02, 40.72)]  # a year typed wrong
    path = write_points(tmp_path / "p.csv", points)
    result = grid_records([path], tmp_path / "g.npz", time_zone="America/New_York", interval_minutes=60,
                          shape=(3, 4), columns={"start_time": "started_at", "start_lon": "start_lng",
                                                 "start_lat": "start_lat"})
    lon, lat = np.array([point[1:] for point in points[:-2]]).T
    box = result.metadata["box"]
    assert box == {"west": lon.min(), "south": lat.min(), "east": lon.max(), "north": lat.max(), "inferred": True}
    assert result.metadata["period"]["start"] == "2018-03-01T00:00:00"
    assert result.metadata["period"]["end"] == "2018-03-04T00:00:00"
    assert result.metadata["outlier_fences"]["lat"]["beyond"] == 1
    assert result.metadata["outlier_fences"]["day"]["beyond"] == 1
    assert result.rejected["outside_box"]["pickups"] == 1 and result.rejected["outside_period"]["pickups"] == 1
    assert result.series.values.sum() == 144


def test_cell_metres_grows_the_box_to_whole_cells(tmp_path):
    path = write_points(tmp_path / "p.csv", [("2018-03-01 00:10:00", -74.02, 40.72)])
    result = grid_records([path], tmp_path / "g.npz", time_zone="UTC", cell_metres=1000, box=BOX,
                          start=START, end=START + timedelta(hours=1))
    rows, cols = result.metadata["grid"]["rows"], result.metadata["grid"]["cols"]
    assert (rows, cols) == (7, 5)  # 6.67 km x 4.22 km, rounded up to whole kilometres
    assert result.metadata["grid"]["cell_metres"] == pytest.approx([1000, 1000], abs=0.01)
    assert result.metadata["box"]["north"] > BOX.north and result.metadata["box"]["east"] > BOX.east


@pytest.mark.parametrize("bad", [{"shape": None}, {"interval_minutes": 7}, {"start": datetime(2018, 3, 1, 0, 10)}])
def test_bad_grid_options_are_config_errors(tmp_path, bad):
    path = write_points(tmp_path / "p.csv", [("2018-03-01 00:10:00", -74.02, 40.72)])
    with pytest.raises(ConfigError):
        grid([path], tmp_path, **bad)


def test_option_parsers():
    assert parse_interval("15min") == 15 and parse_interval("1h") == 60 and parse_interval("1d") == 1440
    assert parse_shape("16x8") == (16, 8)
    with pytest.raises(ConfigError):
        parse_interval("7min")
    with pytest.raises(ConfigError):
        parse_shape("16")


def test_the_jersey_city_files_as_published(tmp_path, shared_data_dir):
    folder = shared_data_dir / "citibike-jc"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    result = grid_records([str(folder / "*.csv")], tmp_path / "jc.npz", time_zone="America/New_York",
                          interval_minutes=60, shape=(8, 8))
    sources = result.metadata["sources"]
    assert [source["layout"] for source in sources] == ["citibike"] * 3
    trips = sum(source["rows"] for source in sources)
    assert trips == 52157  # lines in the three files, less their headers
    assert result.metadata["kept"]["pickups"] + sum(per["pickups"] for per in result.rejected.values()) == trips
    assert result.metadata["kept"]["dropoffs"] + sum(per["dropoffs"] for per in result.rejected.values()) == trips
    assert result.series.values.shape == (92 * 24, 2, 8, 8)  # November to January, hourly
    assert result.metadata["dst"]["repeated"] == ["2017-11-05T01:00:00"]


def test_outages_and_long_silence_are_missing_not_zero(tmp_path):
    """A feed that was down observed nothing: its slots are NaN (gaps), a quiet slot with records elsewhere stays 0."""
    counts = known_counts(seed=3)
    path = write_records(tmp_path / "t.csv", "tlc-yellow", trips_from(counts, 3, False), 3)
    outage = (START + timedelta(minutes=INTERVAL), START + timedelta(minutes=2 * INTERVAL))
    result = grid([path], tmp_path, end=START + timedelta(minutes=(STEPS + 4) * INTERVAL),
                  outages=[outage], silence_minutes=3 * INTERVAL)
    values = read_generic(tmp_path / "grid.npz").values
    assert np.isnan(values[1]).all() and np.isnan(values[STEPS:]).all()  # the outage and 4 silent slots at the end
    observed = [step for step in range(STEPS) if step != 1]
    np.testing.assert_array_equal(values[observed], counts[observed])
    assert [(gap["reason"], gap["slots"]) for gap in result.metadata["unobserved"]] == [("outage", 1), ("silence", 4)]
    assert values[EMPTY_SLOT].sum() == 0  # one silent slot, shorter than the threshold: a real 0


def test_an_outage_must_end_after_it_starts(tmp_path):
    with pytest.raises(ConfigError, match="--outage"):
        grid([], tmp_path, outages=[parse_outage("2018-03-01T02:00/2018-03-01T01:00")])
    with pytest.raises(ConfigError, match="START/END"):
        parse_outage("2018-03-01")
