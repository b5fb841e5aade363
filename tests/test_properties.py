"""Property tests (issue 5) for outbox naming and config parsing.

Path mapping and sidecars have theirs in ``tests/test_paths.py`` and ``tests/test_sidecar.py``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from daemon.config import PosedConfig, load_config, to_dict
from daemon.errors import ConfigError
from daemon.publishing.naming import ERROR_SUFFIX, RESULT_SUFFIX, reserve_stem, safe_stem
from daemon.publishing.publish import numbered_name
from tests.hostile_corpus import WINDOWS_FORBIDDEN, WINDOWS_RESERVED, windows_openable

# Any Unicode, including lone surrogates (how Python spells file-name bytes that are not UTF-8).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=300)
LINUX_NAMES = st.binary(min_size=1, max_size=255).filter(lambda b: b"/" not in b and b"\0" not in b).map(os.fsdecode)
TRICKY = st.sampled_from(["CON", "con", "Nul", "COM1", "lpt\u00b9", "CONIN$", "aux ", ".", "..", " ", "~2", "é", "e\u0301",
                          "ß", "SS", "<", "|", ":", "\\", "\u202e", "\ufeff", "a" * 120, "\U0001f3c3" * 30])  # fmt: skip
COMPOSED = st.lists(st.one_of(TRICKY, ANY_TEXT), max_size=5).map("".join)
NAMES = st.one_of(ANY_TEXT, LINUX_NAMES, COMPOSED)
LONGEST_SUFFIX = "~9999" + RESULT_SUFFIX


@settings(max_examples=400, deadline=None)
@given(NAMES)
@example("CON.mp4")
@example("nul")
@example("..mp4")
@example(" .")
@example("a" * 255)
@example("é" * 200)
@example("\udcff\udcfe.mp4")
def test_a_safe_stem_always_opens_on_windows_and_fits_every_suffix(name):
    stem = safe_stem(name)
    assert stem and stem == safe_stem(name), "deterministic"
    stem.encode("utf-8")  # no lone surrogates: valid in JSON and on NTFS
    assert len((stem + LONGEST_SUFFIX).encode("utf-8")) <= 255
    assert not any(ch in WINDOWS_FORBIDDEN for ch in stem)
    assert stem[-1] not in " ." and not stem.startswith(".")
    assert stem.split(".")[0].rstrip(" ").upper() not in WINDOWS_RESERVED
    for suffix in (RESULT_SUFFIX, ERROR_SUFFIX, LONGEST_SUFFIX):
        assert windows_openable(stem + suffix)
    assert safe_stem(stem) == stem, "a safe name stays as it is"


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40))
def test_a_safe_stem_keeps_ordinary_names(name):
    assume(name == name.strip(" .") and not any(ch in WINDOWS_FORBIDDEN or ch == "\x7f" for ch in name))
    assume(not name.startswith(".") and name.split(".")[0].rstrip(" ").upper() not in WINDOWS_RESERVED)
    assert safe_stem(name) == name, "no rewrite, not even Unicode normalisation"


STEMS = st.sampled_from(["clip.mp4", "Clip.MP4", "CLIP.mp4", "clip.mp4~2", "CLIP.MP4~3", "con.mp4", "_CON.mp4", "x", "X~2"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(existing=st.lists(st.tuples(STEMS, st.sampled_from([RESULT_SUFFIX, ERROR_SUFFIX])), max_size=12),
       wanted=st.one_of(STEMS, NAMES))  # fmt: skip
def test_a_reserved_stem_never_collides_case_insensitively(existing, wanted):
    with tempfile.TemporaryDirectory() as directory:
        outbox = Path(directory)
        for stem, suffix in existing:
            (outbox / f"{stem}{suffix}").touch()
        taken = {name.casefold() for name in os.listdir(outbox)}
        chosen = reserve_stem(outbox, wanted)
        assert chosen == reserve_stem(outbox, wanted), "deterministic for the same outbox"
        assert chosen.startswith(safe_stem(wanted))
        for suffix in (RESULT_SUFFIX, ERROR_SUFFIX):
            assert (chosen + suffix).casefold() not in taken
            assert windows_openable(chosen + suffix)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(STEMS, NAMES), min_size=1, max_size=8))
def test_publishing_many_outcomes_never_makes_two_names_equal_ignoring_case(wanted):
    with tempfile.TemporaryDirectory() as directory:
        outbox = Path(directory)
        for name in wanted:
            (outbox / f"{reserve_stem(outbox, name)}{RESULT_SUFFIX}").touch()
        names = os.listdir(outbox)
        assert len(names) == len(wanted) == len({n.casefold() for n in names})


@settings(max_examples=200, deadline=None)
@given(NAMES.filter(lambda n: "/" not in n and n not in ("", ".", "..")), st.integers(2, 99999))
@example("a." + "x" * 253, 2)
@example("é" * 125 + ".mp4", 99999)
def test_a_numbered_input_name_stays_within_255_bytes(name, n):
    try:
        assume(len(os.fsencode(name)) <= 255)
    except UnicodeEncodeError:
        assume(False)  # no file can have this name: os.listdir never returns it
    numbered = numbered_name(name, n)
    assert len(os.fsencode(numbered)) <= 255 and f"~{n}" in numbered


# -- config -----------------------------------------------------------------------------------


def _keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        keys += _keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys


KEYS = _keys(to_dict(PosedConfig()))
VALUES = st.one_of(
    st.sampled_from(["", "0", "-1", "1e309", "nan", "inf", "true", "null", "~", "???", "[]", "[1, 2", "{a: 1}", "${oc.env:HOME}",
                     "${oc.env:POSED_NO_SUCH_VAR}", "${inbox.path}", "${", "'", "\"", "=", "x=y", "SIGKILL", "SIGNOPE",
                     "polling", "mediapipe", "[.mp4, mov]", "99999999999999999999999", "0x10", "1_000"]),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
)  # fmt: skip
OVERRIDE_KEYS = st.one_of(st.sampled_from(KEYS), st.sampled_from(["nope", "inbox", "inbox.nope", "backend.fault", "a.b.c", ".x", "x."]),
                          st.text(st.characters(exclude_categories=("Cs",)), max_size=12))  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(OVERRIDE_KEYS, VALUES), max_size=3))
@example([("limits.max_width", "-5")])
@example([("backend.name", "phalp ")])
@example([("claim.stale_after_s", "1"), ("claim.heartbeat_interval_s", "1")])
def test_config_overrides_either_load_or_raise_config_error(pairs):
    overrides = [f"{key}={value}" for key, value in pairs]
    try:
        cfg = load_config(overrides=overrides)
    except ConfigError as exc:
        assert str(exc), "a config error names what is wrong"
        return
    assert isinstance(cfg, PosedConfig)
    assert cfg.limits.max_width > 0 and cfg.claim.stale_after_s > 2 * cfg.claim.heartbeat_interval_s


@pytest.mark.parametrize("override", ["daemon.name=\x1f", "daemon.name='", 'inbox.path="unclosed', "daemon.name==", "[=x"])
def test_an_override_yaml_cannot_read_is_a_config_error(override):
    with pytest.raises(ConfigError, match="cannot be parsed|config key|must look like"):
        load_config(overrides=[override])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(OVERRIDE_KEYS, VALUES), max_size=2), st.text(max_size=200))
def test_a_hostile_config_file_either_loads_or_raises_config_error(pairs, junk):
    body = "\n".join(f"{key}: {value}" for key, value in pairs) + "\n" + junk
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8") as handle:
        handle.write(body)
    try:
        load_config(handle.name)
    except ConfigError:
        pass
    finally:
        os.unlink(handle.name)
