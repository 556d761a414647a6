"""`cliniko-switch preview` as a real process against the sandbox (DESIGN.md sections 2, 3a).

One JSON document on stdout whose counts are the sandbox's, the request estimate a download
will be held to, human lines on stderr, refusals with exit 2; no file written, only GETs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.resources import ALL_PARTS, list_variants, resources_for
from sandbox.runner import SandboxHandle

from .conftest import (
    FAST,
    Ran,
    Seen,
    assert_key_nowhere,
    assert_one_error_line,
    list_counts,
    minimum_requests,
    run_cli,
    written_files,
)

pytestmark = pytest.mark.integration

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def preview(handle: SandboxHandle, cwd: Path, *extra: str, key: str | None = None) -> Ran:
    return run_cli(
        "preview",
        "--api-url",
        handle.base_url,
        "--rate-limit",
        FAST,
        *extra,
        key=handle.api_key if key is None else key,
        cwd=cwd,
    )


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_preview_json_counts_are_the_sandboxs(
    size: str,
    tiny: SandboxHandle,
    small_sandbox: SandboxHandle,
    tmp_path: Path,
) -> None:
    handle = tiny if size == "tiny" else small_sandbox
    seen = Seen(handle)
    ran = preview(handle, tmp_path, "--json")

    assert ran.code == EXIT_OK, ran
    doc = json.loads(ran.stdout)  # stdout is the JSON document and nothing else
    assert doc["shard"] == "au1" and doc["account_name"] and doc["errors"] == []
    got = {(c["resource"], c["variant"]): c["count"] for c in doc["counts"]}
    assert got == list_counts(handle)
    # The estimate is the floor a download is held to; at 200 per 2 s, 6,000 a minute.
    assert doc["estimated_requests"] == minimum_requests(handle)
    assert doc["rate_per_minute"] == pytest.approx(6000.0)
    assert doc["estimated_minutes"] == pytest.approx(doc["estimated_requests"] / 6000.0, abs=0.05)
    # One request per list, plus /user and /settings; nothing but GET.
    lists = len(list_variants(resources_for(ALL_PARTS)))
    assert doc["requests_used"] == lists + 2 == seen.requests
    assert seen.by_method == {"GET": seen.requests}

    # Human lines went to stderr: one per list.
    for (resource, variant), n in got.items():
        assert any(
            line.split() == [resource, variant, str(n)] for line in ran.stderr.splitlines()
        ), f"no line for {resource}/{variant} on stderr"
    assert list(written_files(tmp_path)) == []
    assert_key_nowhere(handle.api_key, tmp_path, ran)


def test_preview_without_json_prints_only_to_stderr(tiny: SandboxHandle, tmp_path: Path) -> None:
    ran = preview(tiny, tmp_path)
    assert ran.code == EXIT_OK, ran
    assert ran.stdout == ""
    summary = ran.stderr.strip().splitlines()[-1]
    assert f"about {minimum_requests(tiny)} requests" in summary
    assert "per minute" in summary and "au1" in summary
    assert_key_nowhere(tiny.api_key, tmp_path, ran)


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        pytest.param("none", [], "set CLINIKO_API_KEY", id="no-key-no-terminal"),
        pytest.param("good", ["--region", "uk1"], "au1", id="region-uk1-with-au1-key"),
        pytest.param("unknown", [], "(401)", id="unknown-key-401"),
        pytest.param("restricted", [], "(403)", id="restricted-key-403"),
    ],
)
def test_preview_refusals_exit_2(
    tiny: SandboxHandle, tmp_path: Path, kind: str, extra: list[str], message: str
) -> None:
    keys = {
        "none": None,
        "good": tiny.api_key,
        "unknown": "Zk3mQ9vTw1LpX7aB2cD4eF6gH8jK0nRs-au1",
        "restricted": tiny.keys.add_key("restricted"),
    }
    key = keys[kind]
    seen = Seen(tiny)
    ran = run_cli(
        "preview",
        "--api-url",
        tiny.base_url,
        "--json",
        *extra,
        key=key,
        cwd=tmp_path,
    )
    assert ran.code == EXIT_BAD_INPUT, ran
    assert message in ran.stderr and "error: " in ran.stderr, ran
    assert ran.stdout == ""  # no half JSON document
    assert seen.by_method in ({}, {"GET": seen.requests})
    assert list(written_files(tmp_path)) == []
    if key is not None:
        assert_key_nowhere(key, tmp_path, ran)


def test_preview_refusal_is_one_line_without_a_traceback(
    tiny: SandboxHandle, tmp_path: Path
) -> None:
    ran = preview(tiny, tmp_path, key="Zk3mQ9vTw1LpX7aB2cD4eF6gH8jK0nRs-au1")
    assert ran.code == EXIT_BAD_INPUT, ran
    assert_one_error_line(ran)
