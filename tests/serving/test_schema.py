"""Schemathesis against the served OpenAPI schema: generated and schema-breaking requests, no server error."""

from __future__ import annotations

import re
import subprocess
import sys

from serving_helpers import body, frames

#: Every check that applies to this API. Left out: positive_data_acceptance (a schema cannot say that
#: timestamps step by the model's interval or that values fit its grid, so generated "valid" frames are
#: rightly refused) and allow_header_conformance (Starlette answers 405 per route, naming only that route's
#: method where GET and POST share /v1/forecast).
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,negative_data_rejection")


def test_generated_requests_never_meet_a_server_error(served, service, client, tmp_path):
    values, times = frames(served, served.history_steps)
    assert client.post("/v1/observe", json=body(served, values, times)).status_code == 200  # so GET /v1/forecast answers
    command = [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
               "run", f"{service[0]}/openapi.json",
               "--checks", CHECKS, "--phases", "coverage,fuzzing", "--max-examples", "10", "--workers", "1",
               "--seed", "1", "--report", "junit", "--report-dir", str(tmp_path)]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    summary = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert result.returncode == 0 and summary, result.stdout[-4000:] + result.stderr[-2000:]
    print(summary.group(0))  # the figure docs/benchmark.md quotes (pytest -s)
    generated, passed = map(int, summary.groups())
    assert generated == passed > 100
    assert client.get("/v1/health").json()["models"][served.name]["forecasts"] > 0  # some reached the model
