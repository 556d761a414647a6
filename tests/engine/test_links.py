"""Ids and link objects (engine.cliniko.links), checked against every documented example."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from engine.cliniko import link_collection, link_id, norm_id, record_id

_REPO = Path(__file__).resolve().parents[2]
# The documentation's example payloads: shared/ sits beside the checkout (CI and developers).
EXAMPLES = next(
    (
        p
        for p in (_REPO.parent / "shared/cliniko/examples", Path("/work/shared/cliniko/examples"))
        if p.is_dir()
    ),
    _REPO.parent / "shared/cliniko/examples",
)
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, "0"),
        (82, "82"),
        ("82", "82"),
        ("007", "7"),
        (514810972972521916, "514810972972521916"),
        ("514810972972521916", "514810972972521916"),
        (2**63 - 1, str(2**63 - 1)),
        ("575000000000000001", "575000000000000001"),  # beyond float precision, kept exact
    ],
)
def test_norm_id(raw: object, expected: str) -> None:
    assert norm_id(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        True,
        False,
        1.0,
        5.7e17,
        "1.0",
        "1e3",
        "",
        " 1",
        "1 ",
        "-1",
        "+1",
        -1,
        "0x1f",
        "١٢",  # Arabic-Indic digits: str.isdigit() says yes, ids say no
        "²",
        2**63,
        "9" * 25,
        None,
        [1],
        {"id": 1},
    ],
)
def test_norm_id_rejects(raw: object) -> None:
    with pytest.raises(ValueError, match="id"):
        norm_id(raw)


def _link(url: str) -> dict[str, Any]:
    return {"links": {"self": url}}


@pytest.mark.parametrize(
    ("url", "coll", "id_"),
    [
        ("https://api.au1.cliniko.com/v1/patients/82", "patients", "82"),
        ("https://api.cliniko.com/v1/patients/82", "patients", "82"),
        ("http://api.cliniko.com/v1/contacts/1", "contacts", "1"),
        ("http://api.cliniko.dev:3000/v1/practitioner_reference_numbers/7", None, "7"),
        ("https://api.au1.cliniko.test/v1/patients/3", "patients", "3"),
        ("https://api.au1.cliniko.test:3000/v1/patient_form_templates/9", None, "9"),
        ("https://api.us1.cliniko.com/v1/internal/daily_availabilities/15", None, "15"),
        ("http://127.0.0.1:8765/v1/invoices/514810972972521916", "invoices", None),
        ("/v1/users/5", "users", "5"),
        ("https://api.au1.cliniko.com/v1/patients/82/", "patients", "82"),
        ("https://api.au1.cliniko.com/v1/patients/123/referral_source", "referral_sources", "123"),
        (
            "http://api.au1.cliniko.com/v1/patient_forms/564393784322819470/signatures/5658056",
            "signatures",
            "5658056",
        ),
    ],
)
def test_record_links(url: str, coll: str | None, id_: str | None) -> None:
    expected_id = id_ if id_ is not None else urlsplit(url).path.rstrip("/").rsplit("/", 1)[1]
    assert link_id(_link(url)) == expected_id
    expected_coll = coll or urlsplit(url).path.rstrip("/").rsplit("/", 2)[1]
    assert link_collection(_link(url)) == expected_coll


@pytest.mark.parametrize(
    "url",
    [
        "https://api.au1.cliniko.com/v1/patients/1/invoices?page=1",
        "https://api.au1.cliniko.com/v1/individual_appointments/1/attendees",
        "https://api.au1.cliniko.com/v1/individual_appointments/1/conflicts",
        "https://api.au1.cliniko.com/v1/patient_attachments/1/content",
        "https://api.au1.cliniko.com/v1/patients?page=2",
        "https://api.au1.cliniko.com/v1/patients",
        "https://api.au1.cliniko.com/v1/settings/public",
        "https://api.au1.cliniko.com/v1/businesses/1/practitioners/2/appointment_types/3/"
        "next_available_time",
        "https://api.au1.cliniko.com/v2/patients/1",
        "https://api.au1.cliniko.com/patients/1",
        "https://api.au1.cliniko.com/v1/Patients/1",
        "https://api.au1.cliniko.com/v1/patients/1x",
        "https://api.au1.cliniko.com/v1/patients/99999999999999999999999",
        "https://api.au1.cliniko.com/v1/patients/-1",
        "http://[::1/v1/patients/1",
        "",
    ],
)
def test_not_record_links(url: str) -> None:
    assert link_id(_link(url)) is None
    assert link_collection(_link(url)) is None


@pytest.mark.parametrize(
    "obj",
    [None, {}, {"links": None}, {"links": {}}, {"links": {"self": None}}, {"links": {"self": 1}},
     {"links": "x"}, "https://api.au1.cliniko.com/v1/patients/1", [], 7],
)  # fmt: skip
def test_missing_or_odd_link_objects(obj: object) -> None:
    assert link_id(obj) is None
    assert link_collection(obj) is None


def test_record_id() -> None:
    assert record_id({"id": 5}) == "5"
    assert record_id({"id": "514810972972521916"}) == "514810972972521916"
    assert record_id(_link("https://api.au1.cliniko.com/v1/patients/9/referral_source")) == "9"
    assert record_id({"id": None, **_link("https://x.test/v1/taxes/4")}) == "4"
    with pytest.raises(ValueError, match="neither an id"):
        record_id({"name": "no id"})
    with pytest.raises(ValueError, match="integer or a decimal string"):
        record_id({"id": 1.5})


# --- every documented example -----------------------------------------------------------


def _link_objects(node: object, key: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(key holding it, object) for every object with a `links.self` string, at any depth."""
    if isinstance(node, dict):
        links = node.get("links")
        if isinstance(links, dict) and isinstance(links.get("self"), str):
            yield key, node
        for k, v in node.items():
            yield from _link_objects(v, k)
    elif isinstance(node, list):
        for item in node:
            yield from _link_objects(item, key)


_ENDS_IN_ID = re.compile(r"/[0-9]+$")


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_examples_are_there() -> None:
    assert len(EXAMPLE_FILES) >= 130


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_link_in_the_examples(path: Path) -> None:
    """A link whose path ends in /<digits> (or is a referral source) gives that id; others None."""
    for _key, obj in _link_objects(_load(path)):
        url = obj["links"]["self"]
        link_path = urlsplit(url).path
        got = link_id(obj)
        if link_path.endswith("/referral_source"):
            assert got == link_path.split("/")[-2], url
            assert link_collection(obj) == "referral_sources"
        elif _ENDS_IN_ID.search(link_path):
            assert got == link_path.rsplit("/", 1)[1], url
            assert link_collection(obj) == link_path.rsplit("/", 2)[1], url
        else:
            assert got is None, url
            assert link_collection(obj) is None, url


def test_examples_record_link_count() -> None:
    """A guard that the walk above really visits the nested links (not just page links)."""
    record_links = 0
    for path in EXAMPLE_FILES:
        record_links += sum(1 for _, obj in _link_objects(_load(path)) if link_id(obj))
    assert record_links > 300


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a list example (`{"<resource>": [...]}`) or the single record."""
    data = _load(path)
    if not isinstance(data, dict):
        return
    resource = path.name.split("__", 1)[0]
    items = data.get(resource)
    if isinstance(items, list):
        yield from (r for r in items if isinstance(r, dict))
    else:
        yield data


# Answers that are not records: computed flags, available times, the settings object.
NOT_RECORDS = re.compile(r"^available_times__|__conflicts\.json$|^settings__")
RESPONSE_FILES = [p for p in EXAMPLE_FILES if "request" not in p.name]


@pytest.mark.parametrize("path", RESPONSE_FILES, ids=lambda p: p.name)
def test_every_example_record_has_an_id(path: Path) -> None:
    """Records carry an id (number or string) or a record self link; services have neither."""
    for record in _records(path):
        if path.name.startswith("services__"):
            with pytest.raises(ValueError, match="neither an id"):
                record_id(record)
            continue
        if NOT_RECORDS.search(path.name):
            continue
        rid = record_id(record)
        assert rid.isdigit(), (path.name, rid)
        if "id" in record:
            assert rid == str(int(str(record["id"])))
