"""Routes, pages, `total_entries` and `links`, over real sockets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from sandbox.runner import SandboxHandle

pytestmark = pytest.mark.integration

Client = Callable[..., httpx.Client]
Calls = list[dict[str, Any]]


def _path(resource: str, variant: str) -> str:
    return f"/{resource}" if variant == "active" else f"/{resource}/{variant}"


# Lists whose records have no `id` of their own (API-FACTS.md section 9).
NO_ID = frozenset({"services", "referral_sources"})


def _lists(handle: SandboxHandle) -> dict[tuple[str, str], int]:
    counts = handle.store.counts()
    return {k: v for k, v in counts.items() if handle.store.has_list(*k)}


def _largest(handle: SandboxHandle) -> tuple[str, str, int]:
    """The longest list whose records have ids."""
    lists = {k: v for k, v in _lists(handle).items() if k[0] not in NO_ID}
    (resource, variant), n = max(lists.items(), key=lambda kv: kv[1])
    return resource, variant, n


def _rid(record: dict[str, Any]) -> str:
    """A record's id; rows of `/patients/deleted` carry only `links.self`."""
    if "id" in record:
        return str(record["id"])
    return str(record["links"]["self"]).rsplit("/", 1)[1]


def _walk(client: httpx.Client, url: str, key: str) -> tuple[list[dict[str, Any]], int, int]:
    """Follow links.next from `url`; returns (records, total_entries, pages)."""
    records: list[dict[str, Any]] = []
    pages = 0
    total = -1
    next_url: str | None = url
    while next_url:
        r = client.get(next_url)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        total = body["total_entries"]
        records.extend(body[key])
        next_url = body["links"].get("next")
        assert pages < 10_000
    return records, total, pages


def test_walk_every_page_per_page_100(small_sandbox: SandboxHandle, sandbox_client: Client) -> None:
    resource, variant, n = _largest(small_sandbox)
    assert n > 300, "the small clinic should have a list of several pages"
    client = sandbox_client(small_sandbox)
    url = f"{small_sandbox.base_url}{_path(resource, variant)}?per_page=100"
    records, total, pages = _walk(client, url, resource)
    ids = [_rid(r) for r in records]
    assert total == n == len(records)
    assert len(set(ids)) == len(ids), "a record repeated across pages"
    assert set(ids) == small_sandbox.store.ids(resource, variant)
    assert pages == -(-n // 100)
    # and every list of the small clinic, whole, with per_page=100
    for (res, var), count in _lists(small_sandbox).items():
        got, total, _ = _walk(
            client, f"{small_sandbox.base_url}{_path(res, var)}?per_page=100", res
        )
        assert total == count == len(got), (res, var)
        if res not in NO_ID:
            assert {_rid(r) for r in got} == small_sandbox.store.ids(res, var), (res, var)


@pytest.mark.parametrize("per_page", [1, 7, 50])
def test_small_pages_have_no_gaps_or_repeats(
    sandbox: SandboxHandle, sandbox_client: Client, per_page: int
) -> None:
    resource, variant, n = _largest(sandbox)
    if per_page == 1:
        # one request per record: use a smaller list to keep the suite fast
        resource, variant, n = min(
            ((r, v, c) for (r, v), c in _lists(sandbox).items() if c >= 3), key=lambda t: t[2]
        )
    client = sandbox_client(sandbox)
    url = f"{sandbox.base_url}{_path(resource, variant)}?per_page={per_page}"
    records, total, pages = _walk(client, url, resource)
    ids = [r["id"] for r in records]
    assert total == n == len(ids) == len(set(ids))
    assert pages == max(1, -(-n // per_page))


def test_every_list_and_variant_answers_with_its_total(
    sandbox: SandboxHandle, sandbox_client: Client
) -> None:
    client = sandbox_client(sandbox)
    lists = _lists(sandbox)
    assert ("patients", "active") in lists
    for (resource, variant), n in lists.items():
        r = client.get(f"{sandbox.base_url}{_path(resource, variant)}", params={"per_page": 1})
        assert r.status_code == 200, (resource, variant, r.text)
        body = r.json()
        assert set(body) == {resource, "total_entries", "links"}
        assert body["total_entries"] == n
        assert len(body[resource]) == min(1, n)


def test_default_per_page_is_50_and_links(
    spy_sandbox: SandboxHandle, store_calls: Calls, sandbox_client: Client
) -> None:
    resource, variant, n = _largest(spy_sandbox)
    client = sandbox_client(spy_sandbox)
    path = _path(resource, variant)
    body = client.get(f"{spy_sandbox.base_url}{path}").json()
    assert store_calls[-1]["per_page"] == 50
    assert store_calls[-1]["page"] == 1
    assert len(body[resource]) == min(50, n)
    links = body["links"]
    assert links["self"] == f"{spy_sandbox.base_url}{path}?page=1"
    assert "previous" not in links
    assert ("next" in links) == (n > 50)
    if n > 50:
        assert links["next"] == f"{spy_sandbox.base_url}{path}?page=2"


def test_per_page_is_clamped_to_100(
    spy_sandbox: SandboxHandle, store_calls: Calls, sandbox_client: Client
) -> None:
    resource, variant, n = _largest(spy_sandbox)
    client = sandbox_client(spy_sandbox)
    r = client.get(f"{spy_sandbox.base_url}{_path(resource, variant)}?per_page=1000")
    assert r.status_code == 200
    assert store_calls[-1]["per_page"] == 100
    assert len(r.json()[resource]) == min(100, n)


def test_previous_and_next_presence(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    resource, variant, n = _largest(sandbox)
    assert n >= 3, "the tiny clinic should have a list of at least 3 records"
    client = sandbox_client(sandbox)
    url = f"{sandbox.base_url}{_path(resource, variant)}"
    last = -(-n // 2)
    first = client.get(url, params={"per_page": 2, "page": 1}).json()["links"]
    middle = client.get(url, params={"per_page": 2, "page": 2}).json()["links"]
    final = client.get(url, params={"per_page": 2, "page": last}).json()["links"]
    beyond = client.get(url, params={"per_page": 2, "page": last + 5}).json()
    assert "next" in first
    assert "previous" not in first
    assert "previous" in middle
    assert "self" in middle
    assert ("next" in middle) == (last > 2)
    assert "next" not in final
    assert "previous" in final
    assert beyond[resource] == []
    assert "next" not in beyond["links"]
    assert beyond["total_entries"] == n


def test_links_carry_every_query_parameter(
    spy_sandbox: SandboxHandle, store_calls: Calls, sandbox_client: Client
) -> None:
    client = sandbox_client(spy_sandbox)
    url = f"{spy_sandbox.base_url}/patients"
    params: list[tuple[str, Any]] = [
        ("q[]", "id:>0"),
        ("q[]", "created_at:>=2000-01-01T00:00:00Z"),
        ("sort", "id"),
        ("order", "asc"),
        ("per_page", "2"),
        ("page", "2"),
    ]
    body = client.get(url, params=params).json()
    n = body["total_entries"]
    assert n > 4, "tiny should have a few patients"
    links = body["links"]
    for name, expected_page in (("self", "2"), ("next", "3"), ("previous", "1")):
        parts = urlsplit(links[name])
        assert f"{parts.scheme}://{parts.netloc}" == spy_sandbox.origin
        assert parts.path == "/v1/patients"
        got = parse_qsl(parts.query)
        assert ("page", expected_page) in got
        assert [p for p in got if p[0] != "page"] == [p for p in params if p[0] != "page"]
    # following next gives page 3 with the same filters
    client.get(links["next"])
    call = store_calls[-1]
    assert call["page"] == 3
    assert call["per_page"] == 2
    assert call["q"] == ["id:>0", "created_at:>=2000-01-01T00:00:00Z"]
    assert (call["sort"], call["order"]) == ("id", "asc")


@pytest.mark.parametrize(
    "query", ["page=abc", "page=1.5", "per_page=ten", "per_page=-5", "page=0", "per_page=0"]
)
def test_bad_paging_parameters_are_400(
    sandbox: SandboxHandle, sandbox_client: Client, query: str
) -> None:
    r = sandbox_client(sandbox).get(f"{sandbox.base_url}/patients?{query}")
    assert r.status_code == 400
    assert r.json()["errors"]


def test_single_records_and_404s(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    client = sandbox_client(sandbox)
    some_id = int(min(sandbox.store.ids("patients", "active")))
    r = client.get(f"{sandbox.base_url}/patients/{some_id}")
    assert r.status_code == 200
    assert int(str(r.json()["id"])) == some_id
    for path in (
        "/v1/patients/999999999999",
        "/v1/no_such_resource",
        "/v1/no_such_resource/1",
        "/v1/patients/archivedx",
        "/v1/patients/",
        "/v1/patients/1/nonsense",
        "/v1",
        "/v2/patients",
        "/",
    ):
        r = client.get(f"{sandbox.origin}{path}")
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["errors"]


def test_variant_without_list_is_404(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    lists = _lists(sandbox)
    client = sandbox_client(sandbox)
    for variant in ("archived", "deleted", "cancelled", "inactive"):
        if ("businesses", variant) not in lists:
            r = client.get(f"{sandbox.base_url}/businesses/{variant}")
            assert r.status_code == 404


def test_user_and_settings(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    client = sandbox_client(sandbox)
    user = client.get(f"{sandbox.base_url}/user")
    assert user.status_code == 200
    assert isinstance(user.json(), dict)
    for path in ("/settings", "/settings/public"):
        r = client.get(f"{sandbox.base_url}{path}")
        assert r.status_code == 200
        assert isinstance(r.json(), dict)


def test_practitioner_reference_numbers_and_referral_source(
    sandbox: SandboxHandle, sandbox_client: Client
) -> None:
    client = sandbox_client(sandbox)
    practitioner = min(sandbox.store.ids("practitioners", "active"))
    r = client.get(
        f"{sandbox.base_url}/practitioners/{practitioner}/practitioner_reference_numbers"
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"practitioner_reference_numbers", "total_entries", "links"}
    assert len(body["practitioner_reference_numbers"]) == min(50, body["total_entries"])
    statuses = set()
    for patient in sorted(sandbox.store.ids("patients", "active")):
        r = client.get(f"{sandbox.base_url}/patients/{patient}/referral_source")
        statuses.add(r.status_code)
        if r.status_code == 200:
            assert isinstance(r.json(), dict)
        else:
            assert r.json()["errors"]
    assert statuses <= {200, 404}
