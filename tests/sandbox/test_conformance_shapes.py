"""Sandbox records have the keys and JSON types of Cliniko's documented examples.

For every list and variant the sandbox serves, every rendered record of a small clinic (plus a
tiny one) is compared with the first record of the matching example file in
`shared/cliniko/examples/` (`<resource>__list.json`, `__archived_list`, `__deleted_list`,
`__cancelled_list`, `__inactive_list`): same key set, same JSON type per key.

Allowed differences, each with its reason:

- NULLABLE: a key the example shows with a value may be null where API-FACTS.md documents the
  field as optional (`?`), or says a link may be null [inf]. Each such key must also appear
  non-null somewhere, so "always null" cannot pass.
- WHEN_EXAMPLE_NULL: where the example shows null, our value must be null or of the documented
  type (the example does not show the type).
- MAY_BE_ABSENT: links documented as absent when nothing is referenced (appointment types
  without a billable item or product; invoices not tied to an appointment).
- EXTRA: `doctor_type` on contacts: documented (contacts__get.json) but missing from the older
  list example.
- Not reproduced on purpose: the examples' duplicate `patient_phone_numbers` key (a JSON object
  cannot carry it twice; the last, populated value is what parsers keep, and what we send);
  the envelope quirks `total_entires` (businesses) and string `total_entries` (practitioners)
  belong to the server's envelope, not to records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from sandbox.catalog import LISTS
from sandbox.store import ClinicStore

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
if not EXAMPLES.is_dir():  # the shared folder next to the repository
    EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "cliniko" / "examples"

BASE = "http://127.0.0.1:8765/v1"
ANCHOR = date(2025, 6, 1)

NULLABLE: dict[str, set[str]] = {
    "businesses": {"address_2", "display_name"},
    "practitioners": {"description"},
    "appointment_types": {"category", "description", "show_in_online_bookings"},
    "referral_source_types": {"referrers", "referrer_type", "subcategories"},
    "patients": {
        "accepted_privacy_policy",
        "time_zone",
        "custom_fields",
        "concession_type",
        "referring_doctor",
        "merged_with_patient",  # archived but not merged
    },
    "patient_cases": {
        "issue_date",
        "expiry_date",
        "max_sessions",
        "include_cancelled_attendees",
        "include_dna_attendees",
        "max_invoiceable_amount",
        "notes",
        "referral_type",
    },
    "referral_sources": {"referrer", "referrer_type", "subcategory"},
    "individual_appointments": {"cancellation_note"},
    "attendees": {"cancellation_note", "arrived"},
    "treatment_notes": {"content"},
    "invoices": {"invoice_to", "notes", "patient_extra_information", "closed_at"},
    "patient_attachments": {"content_type", "filename", "size", "description"},
}
_APPT_NULLS = {
    "booking_ip_address": {"str"},
    "cancellation_note": {"str"},
    "cancellation_reason": {"int"},
    "cancelled_at": {"str"},
    "deleted_at": {"str"},
    "invoice_status": {"int"},
    "notes": {"str"},
    "online_booking_policy_accepted": {"bool"},
    "treatment_note_status": {"int"},
    "repeats": set(),
}
WHEN_EXAMPLE_NULL: dict[str, dict[str, set[str]]] = {
    "businesses": {"address_2": {"str"}, "display_name": {"str"}},
    "practitioners": {"description": {"str"}},
    "appointment_types": {"description": {"str"}},
    "referral_source_types": {
        "referrers": {"dict"},
        "referrer_type": {"str"},
        "subcategories": {"list"},
    },
    "patients": {"pronouns": set(), "custom_fields": {"dict"}},
    "contacts": {"deleted_at": {"str"}, "doctor_type": {"str"}},
    "medical_alerts": {"deleted_at": {"str"}},
    "patient_cases": {
        "max_invoiceable_amount": {"str"},
        "include_dna_attendees": {"bool"},
        "notes": {"str"},
        "referral_type": {"str"},
    },
    "referral_sources": {"subcategory": {"str"}, "referrer": {"dict"}},
    "individual_appointments": _APPT_NULLS,
    "attendees": {**_APPT_NULLS, "arrived": {"bool"}},
    "group_appointments": {"notes": {"str"}, "repeats": set(), "deleted_at": {"str"}},
    "unavailable_blocks": {"notes": {"str"}, "repeats": set(), "deleted_at": {"str"}},
    "treatment_note_templates": {"deleted_at": {"str"}},
    "treatment_notes": {"deleted_at": {"str"}},
    "invoices": {"closed_at": {"str"}, "deleted_at": {"str"}},
    "invoice_items": {"deleted_at": {"str"}},
    "patient_attachments": {"description": {"str"}},
}
MAY_BE_ABSENT: dict[str, set[str]] = {
    "appointment_types": {"billable_item", "product"},
    "invoices": {"appointment"},
}
EXTRA: dict[str, set[str]] = {"contacts": {"doctor_type"}}

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MONEY = re.compile(r"^-?\d+\.\d+$")
MONEY_KEYS = {
    "price",
    "total_amount",
    "tax_amount",
    "net_amount",
    "discounted_amount",
    "unit_price",
    "net_price",
    "total_including_tax",
    "max_invoiceable_amount",
    "rate",
    "amount",
    "tax_rate",
    "discount_percentage",
}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "float", str: "str", list: "list", dict: "dict"}[type(value)]


def example_file(resource: str, variant: str) -> Path:
    name = f"{resource}__list.json" if variant == "active" else f"{resource}__{variant}_list.json"
    return EXAMPLES / name


def example_record(path: Path, key: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(path.read_text())[key][0]
    return record


@pytest.fixture(scope="module")
def stores() -> Iterator[list[ClinicStore]]:
    made = [
        ClinicStore.generate("small", seed=3, anchor=ANCHOR),
        ClinicStore.generate("tiny", seed=4, anchor=ANCHOR),
    ]
    try:
        yield made
    finally:
        for s in made:
            s.close()


def check_records(
    resource: str, example: dict[str, Any], records: list[dict[str, Any]]
) -> list[str]:
    """Every problem found, as readable strings."""
    problems: list[str] = []
    expected = {k: json_type(v) for k, v in example.items()}
    nullable = NULLABLE.get(resource, set())
    when_null = WHEN_EXAMPLE_NULL.get(resource, {})
    absent_ok = MAY_BE_ABSENT.get(resource, set())
    extra_ok = EXTRA.get(resource, set())
    seen_non_null: set[str] = set()
    for rec in records:
        missing = set(expected) - set(rec) - absent_ok
        extra = set(rec) - set(expected) - extra_ok
        if missing or extra:
            problems.append(f"keys: missing {sorted(missing)}, extra {sorted(extra)}")
        for key, value in rec.items():
            ours = json_type(value)
            if ours != "null":
                seen_non_null.add(key)
            want = expected.get(key)
            if want is None:
                continue
            if want == "null":
                if ours != "null" and ours not in when_null.get(key, set()):
                    problems.append(f"{key}: example null, ours {ours} (undocumented type)")
            elif ours != want and not (ours == "null" and key in nullable):
                problems.append(f"{key}: example {want}, ours {ours}")
            if isinstance(value, str) and value:
                if key.endswith("_at") and not TIMESTAMP.match(value):
                    problems.append(f"{key}: {value!r} is not a UTC timestamp")
                if key in ("issue_date", "expiry_date", "date_of_birth") and not DATE.match(value):
                    problems.append(f"{key}: {value!r} is not a date")
                if key in MONEY_KEYS and not MONEY.match(value):
                    problems.append(f"{key}: {value!r} is not a decimal string")
            if isinstance(value, dict) and "links" in value:
                link = value["links"]["self"]
                if not link.startswith(BASE + "/"):
                    problems.append(f"{key}: link {link!r} not on the base URL")
    never = {k for k in nullable if k in expected and expected[k] != "null"} - seen_non_null
    if never:
        problems.append(f"documented-optional keys never non-null: {sorted(never)}")
    return sorted(set(problems))


@pytest.mark.parametrize(("resource", "variant"), LISTS, ids=[f"{r}/{v}" for r, v in LISTS])
def test_list_records_match_the_example(
    stores: list[ClinicStore], resource: str, variant: str
) -> None:
    path = example_file(resource, variant)
    assert path.exists(), f"no example for {resource}/{variant}"
    example = example_record(path, resource)
    records = [r for s in stores for r in s.raw_records(resource, variant, BASE)]
    assert records, f"the sandbox has no {resource}/{variant} rows to compare"
    assert check_records(resource, example, records) == []


def test_ids_are_strings_exactly_where_the_examples_use_strings(
    stores: list[ClinicStore],
) -> None:
    small = stores[0]
    expected_string = {"businesses", "appointment_types", "taxes", "patient_cases"}
    for resource, variant in LISTS:
        path = example_file(resource, variant)
        example = example_record(path, resource)
        for rec in small.raw_records(resource, variant, BASE):
            if "id" not in rec:
                continue
            assert json_type(rec["id"]) == json_type(example["id"]), (resource, variant)
            string = resource in expected_string or (resource, variant) == (
                "practitioners",
                "active",
            )
            assert isinstance(rec["id"], str) is string, (resource, variant)
            int(rec["id"])  # always decimal digits


def test_patients_unset_values_are_empty_strings(stores: list[ClinicStore]) -> None:
    rows = list(stores[0].raw_records("patients", "active", BASE))
    assert all(r["archived_at"] == "" and r["deleted_at"] == "" for r in rows)
    assert any(r["date_of_birth"] == "" for r in rows) or any(
        r["date_of_birth"] == "" for r in stores[0].raw_records("patients", "archived", BASE)
    )
    assert any(r["email"] == "" for r in rows)
    assert all(r["pronouns"] is None for r in rows)
    # merged_at / merged_with_patient only on archived rows, as in the examples
    assert all("merged_at" not in r for r in rows)
    archived = list(stores[0].raw_records("patients", "archived", BASE))
    assert all("merged_at" in r and "merged_with_patient" in r for r in archived)


def test_deleted_patients_are_only_deleted_at_and_self_link(stores: list[ClinicStore]) -> None:
    example = example_record(EXAMPLES / "patients__deleted_list.json", "patients")
    rows = [r for s in stores for r in s.raw_records("patients", "deleted", BASE)]
    assert rows
    for r in rows:
        assert set(r) == set(example) == {"deleted_at", "links"}
        assert TIMESTAMP.match(r["deleted_at"])
        assert re.fullmatch(re.escape(BASE) + r"/patients/\d+", r["links"]["self"])


def test_practitioner_reference_numbers_match_the_example(stores: list[ClinicStore]) -> None:
    example = example_record(
        EXAMPLES / "practitioner_reference_numbers__list.json", "practitioner_reference_numbers"
    )
    small = stores[0]
    records: list[dict[str, Any]] = []
    for pid in small.ids("practitioners", "active") | small.ids("practitioners", "inactive"):
        page, _ = small.practitioner_reference_numbers(pid, 1, 100, BASE)
        records.extend(page)
    assert records
    assert check_records("practitioner_reference_numbers", example, records) == []
    single = small.get_one("practitioner_reference_numbers", str(records[0]["id"]), BASE)
    get_example = json.loads((EXAMPLES / "practitioner_reference_numbers__get.json").read_text())
    assert set(single) == set(get_example)


def test_referral_source_single_get_matches_the_examples(stores: list[ClinicStore]) -> None:
    small = stores[0]
    for pid in sorted(small.ids("referral_sources", "active"))[:20]:
        record = small.referral_source(pid, BASE)
        for name in ("referrer_patient", "referrer_contact", "other_type", "custom_type"):
            example = json.loads((EXAMPLES / f"referral_sources__get_{name}.json").read_text())
            assert set(record) == set(example)
        assert record["links"]["self"] == f"{BASE}/patients/{pid}/referral_source"


def test_user_matches_the_authenticated_user_example(stores: list[ClinicStore]) -> None:
    example = json.loads((EXAMPLES / "users__authenticated_user.json").read_text())
    user = stores[0].user(BASE)
    assert {k: json_type(v) for k, v in user.items()} == {
        k: json_type(v) for k, v in example.items()
    }
    assert user["role"] == "administrator"


def _shape(value: Any) -> Any:
    """Keys (recursively) of a settings document, lists reduced to their first item."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return json_type(value)


@pytest.mark.parametrize(("public", "name"), [(False, "get"), (True, "public")])
def test_settings_match_the_examples(stores: list[ClinicStore], public: bool, name: str) -> None:
    example = json.loads((EXAMPLES / f"settings__{name}.json").read_text())
    ours = stores[0].settings(BASE, public=public)
    assert set(ours) == set(example)
    for section in ("account", "calendar", "online_bookings", "reminders", "terminology"):
        assert set(ours[section]) == set(example[section]), section
    assert ours["links"] == {"self": f"{BASE}/settings/public"}
    field = example["patient_custom_fields_definition"]["sections"][0]["fields"][0]
    ours_fields = ours["patient_custom_fields_definition"]["sections"][0]["fields"]
    assert set(field) <= set(ours_fields[0])
