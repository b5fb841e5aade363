"""Names of outbox files: safe on NTFS, unique case-insensitively, never reused.

The outbox is read from Windows, where names are case-insensitive and some are reserved
(``CON``, ``NUL.txt``, a trailing dot or space). A result name must open there, must not collide
with another input's result that differs only in letter case, and must never replace a published
file: a resubmitted video gets ``name~2.result.json``. That is the one numbering rule (README,
"The folder protocol"): ``~N`` goes just before the type suffix, here the outcome's
(``.result.json``), for a moved input its extension (``done/name~2.mp4``, ``publish.numbered_name``).

The rule (README, "The folder protocol"; ``outcomeStem`` in node/src/naming.mjs is
the same rule, checked against this one by tests/test_naming_rule.py): the stem is the job id
or the input's name, byte for byte, except that characters NTFS cannot hold
(``< > : " / \\ | ? *`` and control characters) become ``_``; trailing spaces and dots and leading
spaces are removed; a Windows device name (``CON``, ``NUL``, ``COM1``, ...) before the first dot
gets a leading ``_``, as does a leading dot (a hidden file); bytes that are not UTF-8 become
U+FFFD; a stem over 236 UTF-8 bytes is cut at a character boundary to 225 bytes plus ``-`` and
the first 10 hex digits of the SHA-1 of the whole stem. Unicode normalisation is never applied:
macOS uploads arrive in NFD, and NTFS stores either form as given.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

RESULT_SUFFIX = ".result.json"  # the manifest: the one name a consumer polls for
ERROR_SUFFIX = ".error.json"
# Companion files a result may have, by kind; each is published before the manifest.
OUTPUT_SUFFIXES = {"frames": ".frames.jsonl", "motion": ".motion.glb", "preview": ".preview.mp4"}
OUTCOME_SUFFIXES = (RESULT_SUFFIX, ERROR_SUFFIX, *OUTPUT_SUFFIXES.values())
MAX_NAME_BYTES = 255  # NTFS and ext4 limit for one path component
_SUFFIX_ROOM = len("~9999") + max(len(s) for s in OUTCOME_SUFFIXES) + 1  # the longest suffix we ever append

_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
# Device names Windows opens instead of a file, with any extension ("NUL.mp4.result.json").
# Windows 10+ also reserves the superscript-digit forms; CONIN$/CONOUT$ name the console.
_RESERVED = {
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
    *(f"{device}{digit}" for device in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"),
}  # fmt: skip


def printable_name(name: str) -> str:
    """``name`` as valid Unicode: bytes that are not UTF-8 (Linux allows them in file names,
    Python keeps them as lone surrogates) become U+FFFD, so JSON and logs can carry it."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        pass
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that did not come from a file name (e.g. "\ud800" in JSON)
        return name.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def safe_stem(name: str) -> str:
    """A name Windows can open: forbidden characters replaced, reserved names escaped, bounded.
    No Unicode normalisation: a consumer looks for the exact name it gave (NFD from macOS)."""
    cleaned = _FORBIDDEN.sub("_", printable_name(name)).rstrip(" .")
    cleaned = cleaned.lstrip(" ") or "_"
    # Windows reserves the device name even with an extension: "CON.mp4" opens the console.
    if cleaned.split(".")[0].rstrip(" ").upper() in _RESERVED:
        cleaned = "_" + cleaned
    if cleaned.startswith("."):  # a dotfile would be hidden from the consumer
        cleaned = "_" + cleaned[1:]
    return _fit(cleaned, MAX_NAME_BYTES - _SUFFIX_ROOM)


def _fit(name: str, max_bytes: int) -> str:
    encoded = name.encode("utf-8")
    if len(encoded) <= max_bytes:
        return name
    digest = hashlib.sha1(encoded).hexdigest()[:10]
    keep = encoded[: max_bytes - len(digest) - 1].decode("utf-8", errors="ignore")
    return f"{keep}-{digest}"


def reserve_stem(outbox: Path, wanted: str) -> str:
    """The first of ``wanted``, ``wanted~2``, ... with no outcome file of any kind (manifest,
    error report, frames, exports), ignoring case: a result's files always share one stem."""
    stem = safe_stem(wanted)
    taken = _taken_names(outbox)
    for n in range(1, 10_000):
        candidate = stem if n == 1 else f"{stem}~{n}"
        if all((candidate + suffix).casefold() not in taken for suffix in OUTCOME_SUFFIXES):
            return candidate
    raise RuntimeError(f"more than 9999 outcomes named {stem!r} in {outbox}")


def _taken_names(outbox: Path) -> set[str]:
    try:
        return {entry.casefold() for entry in os.listdir(outbox)}
    except FileNotFoundError:
        return set()


def job_id_for(stem: str, instance_id: str) -> str:
    """Job ids are unique across daemons and resubmissions; the stem keeps them readable."""
    return f"{printable_name(stem)}@{instance_id[:8]}-{os.urandom(3).hex()}"
