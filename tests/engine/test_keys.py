"""API key parsing, region check, key source and base URL (engine.cliniko.keys)."""

from __future__ import annotations

import pytest

from engine.cliniko import (
    KNOWN_SHARDS,
    ApiKey,
    BadKey,
    InsecureURL,
    RegionMismatch,
    base_url_for,
    check_region,
    key_from_env_or_prompt,
    parse_key,
    validate_api_url,
)

BODY = "MS0xMjM0NTY3ODkwMTIzNDU2Nzg5MC1hYmNkZWZnaGlqa2xtbm9w"


def test_suffix_gives_the_shard() -> None:
    key = parse_key(f"{BODY}-au2")
    assert key.shard == "au2"
    assert key.has_suffix
    assert key.region == "Australia"
    assert key.warning is None
    assert key.reveal() == f"{BODY}-au2"  # sent whole: auth accepts it with its suffix


def test_suffix_is_case_insensitive_and_whitespace_is_stripped() -> None:
    key = parse_key(f"  \t{BODY}-UK1\n")
    assert key.shard == "uk1"
    assert key.reveal() == f"{BODY}-UK1"


def test_key_without_suffix_is_au1() -> None:
    key = parse_key(BODY)
    assert (key.shard, key.has_suffix) == ("au1", False)


@pytest.mark.parametrize("suffix", ["abc", "a1", "au123", "au_1", "x-1", "ü1"])
def test_invalid_suffix_means_no_suffix(suffix: str) -> None:
    raw = f"{BODY}-{suffix}"
    if not raw.isascii():
        with pytest.raises(BadKey):
            parse_key(raw)
        return
    key = parse_key(raw)
    assert (key.shard, key.has_suffix) == ("au1", False)
    assert key.reveal() == raw


def test_unknown_but_valid_shard_is_accepted_with_a_warning() -> None:
    key = parse_key(f"{BODY}-zz9")
    assert key.shard == "zz9"
    assert key.warning is not None
    assert "zz9" in key.warning
    assert key.region == "unknown region"


@pytest.mark.parametrize("shard", sorted(KNOWN_SHARDS))
def test_every_known_shard(shard: str) -> None:
    key = parse_key(f"{BODY}-{shard}")
    assert key.shard == shard
    assert key.warning is None


def test_key_never_shows_in_repr_str_or_dump() -> None:
    secret = f"{BODY}-au1"
    key = parse_key(secret)
    for text in (repr(key), str(key), key.model_dump_json(), str(key.model_dump()), f"{key}"):
        assert BODY not in text
    assert isinstance(key, ApiKey)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "No Cliniko API key"),
        ("   \n", "No Cliniko API key"),
        (f"{BODY[:20]} {BODY[20:]}-au1", "spaces"),
        (f"{BODY}\x00-au1", "control"),
        (f"{BODY}\x1b[0m", "control"),
        (f"'{BODY}-au1'", "quotes"),
        (f'"{BODY}-au1"', "quotes"),
        (f"{BODY}:x-au1", "characters"),
        (f"{BODY}é-au1", "characters"),
        ("abc-au1", "too short"),
        ("x" * 600, "too long"),
    ],
)
def test_malformed_keys_are_refused_without_echoing_them(raw: str, words: str) -> None:
    with pytest.raises(BadKey) as info:
        parse_key(raw)
    assert words in str(info.value)
    assert info.value.hint
    if raw.strip():
        assert raw.strip() not in str(info.value)
        assert BODY[:12] not in str(info.value)
        assert BODY[:12] not in info.value.hint


def test_check_region_accepts_the_keys_shard() -> None:
    check_region(parse_key(f"{BODY}-uk1"), "uk1")
    check_region(parse_key(f"{BODY}-uk1"), " UK1 ")
    check_region(parse_key(BODY), "au1")


def test_check_region_names_the_right_one() -> None:
    with pytest.raises(RegionMismatch) as info:
        check_region(parse_key(f"{BODY}-uk1"), "au1")
    message = str(info.value)
    assert "This key belongs to shard uk1 (United Kingdom); choose uk1" in message
    assert BODY not in message


def test_check_region_for_a_key_without_suffix() -> None:
    with pytest.raises(RegionMismatch) as info:
        check_region(parse_key(BODY), "us1")
    assert "au1 (Australia)" in str(info.value)


def test_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINIKO_API_KEY", f" {BODY}-eu1 ")

    def prompt(_: str) -> str:
        raise AssertionError("must not prompt when the variable is set")

    assert key_from_env_or_prompt(prompt).shard == "eu1"


def test_key_from_prompt_when_env_is_missing_or_blank(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return f"{BODY}-ca1"

    monkeypatch.delenv("CLINIKO_API_KEY", raising=False)
    assert key_from_env_or_prompt(prompt).shard == "ca1"
    monkeypatch.setenv("CLINIKO_API_KEY", "  ")
    assert key_from_env_or_prompt(prompt).shard == "ca1"
    assert len(asked) == 2


def test_default_prompt_is_hidden_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLINIKO_API_KEY", raising=False)
    monkeypatch.setattr("getpass.getpass", lambda _prompt: f"{BODY}-us1")
    assert key_from_env_or_prompt(None).shard == "us1"


def test_bad_key_from_env_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINIKO_API_KEY", "short")
    with pytest.raises(BadKey):
        key_from_env_or_prompt(None)


def test_base_url_for_shards() -> None:
    assert base_url_for("au2") == "https://api.au2.cliniko.com/v1"
    assert base_url_for("UK1", None) == "https://api.uk1.cliniko.com/v1"
    with pytest.raises(ValueError, match="shard"):
        base_url_for("evil.com/x")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("https://proxy.example.org/cliniko/v1/", "https://proxy.example.org/cliniko/v1"),
        ("https://api.au1.cliniko.com/v1", "https://api.au1.cliniko.com/v1"),
        ("http://127.0.0.1:8765/v1", "http://127.0.0.1:8765/v1"),
        ("http://127.9.8.7:1/v1", "http://127.9.8.7:1/v1"),
        ("http://localhost:8765/v1", "http://localhost:8765/v1"),
        ("http://LocalHost/v1", "http://LocalHost/v1"),
        ("http://[::1]:8765/v1", "http://[::1]:8765/v1"),
    ],
)
def test_allowed_overrides(override: str, expected: str) -> None:
    assert base_url_for("au1", override) == expected
    assert validate_api_url(override) == expected


@pytest.mark.parametrize(
    "override",
    [
        "http://example.com/v1",
        "http://10.0.0.1:8765/v1",
        "http://192.168.1.10/v1",
        "http://localhost.evil.example/v1",
        "http://127.0.0.1.nip.io/v1",
        "http://[::2]/v1",
        "ftp://127.0.0.1/v1",
        "127.0.0.1:8765/v1",
        "https:///v1",
        "https://api.au1.cliniko.com/v1?x=1",
    ],
)
def test_refused_overrides(override: str) -> None:
    with pytest.raises(InsecureURL) as info:
        base_url_for("au1", override)
    assert info.value.hint


def test_credentials_in_an_override_are_refused_and_not_echoed() -> None:
    with pytest.raises(InsecureURL) as info:
        base_url_for("au1", f"https://{BODY}:pw@api.au1.cliniko.com/v1")
    assert BODY not in str(info.value)
    assert "pw" not in str(info.value)
