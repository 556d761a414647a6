from __future__ import annotations

import zoneinfo

import pytest

from engine.mapping.timezones import (
    FALLBACK_ZONE,
    RAILS_TO_IANA,
    is_iana_zone,
    rails_to_iana,
    resolve_zone,
)


@pytest.mark.parametrize(
    ("rails", "iana"),
    [
        ("Melbourne", "Australia/Melbourne"),
        ("Canberra", "Australia/Melbourne"),
        ("Sydney", "Australia/Sydney"),
        ("Brisbane", "Australia/Brisbane"),
        ("Adelaide", "Australia/Adelaide"),
        ("Perth", "Australia/Perth"),
        ("Hobart", "Australia/Hobart"),
        ("Darwin", "Australia/Darwin"),
        ("Auckland", "Pacific/Auckland"),
        ("Wellington", "Pacific/Auckland"),
        ("Eastern Time (US & Canada)", "America/New_York"),
        ("Pacific Time (US & Canada)", "America/Los_Angeles"),
        ("Central Time (US & Canada)", "America/Chicago"),
        ("Mountain Time (US & Canada)", "America/Denver"),
        ("Atlantic Time (Canada)", "America/Halifax"),
        ("Newfoundland", "America/St_Johns"),
        ("London", "Europe/London"),
        ("Edinburgh", "Europe/London"),
        ("Dublin", "Europe/Dublin"),
        ("UTC", "Etc/UTC"),
        ("Kyiv", "Europe/Kyiv"),
        ("Kiev", "Europe/Kyiv"),
        ("International Date Line West", "Etc/GMT+12"),
        ("Nuku'alofa", "Pacific/Tongatapu"),
    ],
)
def test_rails_names(rails: str, iana: str) -> None:
    resolved = resolve_zone(rails)
    assert resolved.iana == iana
    assert resolved.known
    assert resolved.source == rails
    assert rails_to_iana(rails) == iana


def test_every_mapped_zone_loads() -> None:
    assert len(RAILS_TO_IANA) >= 150
    for name, iana in RAILS_TO_IANA.items():
        assert zoneinfo.ZoneInfo(iana), name


def test_iana_passes_through() -> None:
    assert resolve_zone("Australia/Melbourne").iana == "Australia/Melbourne"
    assert resolve_zone("  Europe/Paris ").iana == "Europe/Paris"
    assert is_iana_zone("America/New_York")


@pytest.mark.parametrize("name", ["Atlantis", "melbourne", "../etc/passwd", "/etc/x", "", "  "])
def test_unknown_falls_back_to_utc_with_flag(name: str) -> None:
    resolved = resolve_zone(name)
    assert resolved.iana == FALLBACK_ZONE
    assert not resolved.known


@pytest.mark.parametrize("value", [None, 10, ["Melbourne"], {"tz": "Melbourne"}])
def test_non_text_falls_back(value: object) -> None:
    resolved = resolve_zone(value)
    assert (resolved.iana, resolved.known, resolved.source) == (FALLBACK_ZONE, False, None)
    assert not is_iana_zone(value)
