"""A bounded schemathesis run against the service's own OpenAPI document, on a real server process:
whatever the generated requests (valid and invalid), no answer is a 5xx."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from detect.serve.process import ServiceProcess

#: generated requests an operation
EXAMPLES = 20


@pytest.mark.slow
def test_no_generated_request_gets_a_server_error(model_dir: Path, data_root: Path, tmp_path: Path) -> None:
    with ServiceProcess(model_dir, tmp_path, "--data-root", str(data_root), "--max-video-mb", "1") as server:
        schema = schemathesis.openapi.from_url(server.url + "openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 10
        for operation in operations:
            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def call(case) -> None:
                case.call_and_validate(checks=[not_a_server_error], timeout=60)

            call()
        metrics = httpx.get(server.url + "metrics", timeout=30).text
    answered = {status: sum(float(v) for v in re.findall(rf'status="{status}\d\d"}} (\S+)', metrics))
                for status in "2345"}
    assert answered["5"] == 0
    assert answered["2"] + answered["4"] >= 5 * len(operations), answered  # the calls were made
