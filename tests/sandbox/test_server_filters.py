"""`q[]`/`q` filters and `sort`/`order` reach the store; bad ones are 400."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox.runner import SandboxHandle

pytestmark = pytest.mark.integration

Client = Callable[..., httpx.Client]
Calls = list[dict[str, Any]]

# One filter per documented operator (API-FACTS.md section 4), on patient fields.
OPERATOR_FILTERS = [
    "id:=1,2,3",
    "id:!=1",
    "id:>1",
    "id:>=1",
    "id:<999999999",
    "id:<=999999999",
    "first_name:=Ann",
    "first_name:!=Ann",
    "first_name:~an",
    "first_name:~~%an%",
    "date_of_birth:=****-05-**",
    "date_of_birth:>=1950-01-01",
    "date_of_birth:<2030-01-01",
    "created_at:>2000-01-01T00:00:00Z",
    "updated_at:>=2000-01-01T00:00:00Z",
    "updated_at:<=2100-01-01T00:00:00Z",
    "created_at:<2100-01-01T00:00:00Z",
]


@pytest.mark.parametrize("flt", OPERATOR_FILTERS)
def test_each_operator_reaches_the_store(
    spy_sandbox: SandboxHandle, store_calls: Calls, sandbox_client: Client, flt: str
) -> None:
    client = sandbox_client(spy_sandbox)
    r = client.get(f"{spy_sandbox.base_url}/patients", params=[("q[]", flt)])
    assert r.status_code == 200, r.text
    call = store_calls[-1]
    assert call["q"] == [flt]
    assert (call["resource"], call["variant"]) == ("patients", "active")
    # the single-filter form `q=` is accepted too
    r = client.get(f"{spy_sandbox.base_url}/patients", params={"q": flt})
    assert r.status_code == 200, r.text
    assert store_calls[-1]["q"] == [flt]


def test_repeated_filters_keep_their_order(
    spy_sandbox: SandboxHandle, store_calls: Calls, sandbox_client: Client
) -> None:
    client = sandbox_client(spy_sandbox)
    filters = ["id:>1", "created_at:>2000-01-01T00:00:00Z", "first_name:~~%a%"]
    r = client.get(
        f"{spy_sandbox.base_url}/patients/archived", params=[("q[]", f) for f in filters]
    )
    assert r.status_code in (200, 404), r.text  # 404 only if the store has no archived list
    if r.status_code == 200:
        call = store_calls[-1]
        assert call["q"] == filters
        assert call["variant"] == "archived"


def test_id_filters_select_the_right_rows(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    client = sandbox_client(sandbox)
    ids = sorted(int(i) for i in sandbox.store.ids("patients", "active"))
    pivot = ids[len(ids) // 2]

    def fetch(flt: str) -> set[int]:
        r = client.get(f"{sandbox.base_url}/patients", params={"q[]": flt, "per_page": 100})
        assert r.status_code == 200, r.text
        return {int(str(p["id"])) for p in r.json()["patients"]}

    assert fetch(f"id:>{pivot}") == {i for i in ids if i > pivot}
    assert fetch(f"id:<={pivot}") == {i for i in ids if i <= pivot}
    assert fetch(f"id:={ids[0]},{ids[-1]}") == {ids[0], ids[-1]}


@pytest.mark.parametrize(
    "flt", ["nonsense", "no_such_field:=1", "id:>notanumber", "id:=", "first_name"]
)
def test_a_bad_filter_is_400(sandbox: SandboxHandle, sandbox_client: Client, flt: str) -> None:
    r = sandbox_client(sandbox).get(f"{sandbox.base_url}/patients", params={"q[]": flt})
    assert r.status_code == 400, r.text
    body = r.json()
    assert isinstance(body["errors"], str)
    assert body["errors"]


def test_sort_and_order(
    spy_sandbox: SandboxHandle, store_calls: Calls, sandbox_client: Client
) -> None:
    client = sandbox_client(spy_sandbox)
    url = f"{spy_sandbox.base_url}/patients"

    def ids(**params: str) -> list[int]:
        r = client.get(url, params={"per_page": "100", **params})
        assert r.status_code == 200, r.text
        return [int(str(p["id"])) for p in r.json()["patients"]]

    asc = ids(sort="id", order="asc")
    assert store_calls[-1]["sort"] == "id"
    assert store_calls[-1]["order"] == "asc"
    desc = ids(sort="id", order="desc")
    every = sorted(int(i) for i in spy_sandbox.store.ids("patients", "active"))
    assert asc == every[: len(asc)]
    assert desc == every[::-1][: len(desc)]
    ids()
    call = store_calls[-1]
    assert call["sort"] is None
    assert call["order"] is None
