"""Schemathesis (its command line, as an outside developer would run it) against the live server's OpenAPI document
at `/api`: generated requests for every operation, valid and invalid, never get a 5xx.

Once anonymously, once as the publisher of a group of its own (so the write routes get past 401 and parse what they
are sent; whatever the run creates belongs to that group alone). Deterministic generation: the same requests on every
run, so a failure can be reproduced with the command the test prints.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.access import issue
from tests.support.servers import LiveServer

EXAMPLES_PER_OPERATION = 30


@pytest.mark.parametrize("caller", ["anonymous", "group publisher"])
def test_no_generated_request_gets_a_server_error(
    live_server: LiveServer, database_url: str, tmp_path: Path, caller: str
) -> None:
    headers: list[str] = []
    if caller != "anonymous":
        token = issue(database_url, "fuzzer@schemathesis", {"schemathesis-fuzzers": "publisher"})
        headers = ["-H", f"Authorization: Bearer {token}"]
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{live_server.url}/api?f=json",
        "--url",
        live_server.url,
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--generation-deterministic",
        "--request-timeout",
        "30",
        # One worker: with two threads, hypothesis's ast.parse of its own filters met CPython 3.11's
        # "AST constructor recursion depth mismatch" (python/cpython#106905) once, an error of the tool, not the API.
        "--workers",
        "1",
        "--suppress-health-check",
        "all",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        *headers,
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1500, check=False)  # noqa: S603
    summary = run.stdout[-6000:]
    assert run.returncode == 0, f"{' '.join(command)}\n{summary}\n{run.stderr[-2000:]}"
    counts = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert counts is not None and int(counts[1]) == int(counts[2]) > 1000, summary
