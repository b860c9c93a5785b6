"""The load test's own figures, on the service in a thread and on `stvfm serve` in a subprocess."""

from __future__ import annotations

import pytest

from stvfm.serving.load_test import benchmark_service, load_test


def test_load_test_counts_every_request_and_its_batches(served, service):
    result = load_test(service[0], served.name, clients=4, requests=24)
    assert result.failed == 0 and result.requests == 24
    assert 0 < result.p50_ms <= result.p99_ms and result.requests_per_s > 0
    assert 1 <= result.forward_passes <= 24


@pytest.mark.slow  # starts `stvfm serve` in a subprocess: the CLI's imports take seconds
def test_the_benchmark_runs_stvfm_serve_and_reads_its_memory(served, tmp_path):
    folder = str(served.forecaster.folder)
    result = benchmark_service([folder], served.name, str(tmp_path / "h.sqlite"), clients=(1, 2), requests=6,
                               memory_requests=10, memory_readings=2, serve_options=("--keep-alive", "30"))
    assert [row["clients"] for row in result["rows"]] == [1, 2]
    assert [part["requests"] for part in result["memory"]["parts"]] == [5, 5]
    assert all(row["failed"] == 0 for row in [*result["rows"], *result["memory"]["parts"]])
    assert len(result["memory"]["rss_mib"]) == 3 and min(result["memory"]["rss_mib"]) > 50
