"""The optional job sidecar ``<video file name>.job.json``: client job id, options, metadata.

The Node backend drops it before (or with) the video, via ``.part`` + rename like the video.
Everything in it is untrusted: any defect becomes ``JobError(E_BAD_SIDECAR)`` naming the
field, which the daemon turns into an error report instead of a crash (issue 4). Unknown keys
are refused so a misspelt option (``start_fame``) cannot be silently ignored.

Example::

    {"job_id": "upload-4711",
     "options": {"start_frame": 0, "end_frame": 300, "include_mesh": false,
                 "backend": "phalp", "priority": 5,
                 "motion": {"smoothing": true, "fill_gaps": true, "include_raw": false, "max_gap_s": 0.3}},
     "metadata": {"user": 12, "session": "abc"},
     "input_path": "C:\\\\Users\\\\coach\\\\uploads\\\\a.mov"}
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.errors import ErrorCode, JobError
from daemon.paths import SIDECAR_SUFFIX, BadPath, to_wsl, to_windows
from daemon.records import OPTIONAL_OUTPUTS, JobOptions

MAX_SIDECAR_BYTES = 256 * 1024
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_DEPTH = 32  # the metadata object is level 1; a stated limit the Node client checks too
MAX_JOB_ID_CHARS = 128
MAX_FRAME_INDEX = 10**9
# Priority, the one direction for both intakes (BullMQ's own): 0 or none runs first, then 1,
# 2, ...: a lower number runs sooner. Up to BullMQ's largest priority, 2**21.
PRIORITY_RANGE = (0, 2**21)
# The job id becomes an outbox file name on Windows: no separators, no leading dot (dot names
# are not results), no "~" (the daemon's collision suffix), no trailing dot (Windows strips it).
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?<!\.)")  # used with fullmatch
BACKEND_HINT_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")
TOP_LEVEL_KEYS = ("job_id", "options", "metadata", "input_path")
OPTION_KEYS = ("start_frame", "end_frame", "include_mesh", "backend", "priority", "motion", *OPTIONAL_OUTPUTS)
MOTION_SWITCHES = ("smoothing", "fill_gaps", "include_raw")  # options.motion booleans
MESSAGE_PREFIX = "job sidecar: "  # every sidecar error message starts so; the queue intake swaps it for its own
MAX_GAP_S_LIMIT = 10.0  # the gap filler holds max_gap_s of frames back: keep that bounded
# O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: never follow a symlink.
READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# Windows reserves COM0-9 and LPT0-9 too (and their superscript forms, which the pattern
# already refuses): refused here, never escaped to "_LPT0", which a client would not find.
_DEVICE_NAMES = frozenset(["CON", "PRN", "AUX", "NUL"] + [f"{p}{i}" for p in ("COM", "LPT") for i in range(10)])


@dataclass(frozen=True)
class SidecarOptions:
    """Options a client may set per video; None means "use the daemon's default"."""

    start_frame: int | None = None
    end_frame: int | None = None  # exclusive
    include_mesh: bool | None = None
    backend: str | None = None  # a hint; the daemon runs one backend and reports which in the result
    priority: int = 0  # lower first (0 = none = first), among videos waiting at the same time: PRIORITY_RANGE
    outputs: tuple[tuple[str, bool], ...] = ()  # optional outputs switched on or off (output.*)
    motion: dict[str, Any] | None = field(default=None, hash=False)  # motion.* overrides (MOTION_SWITCHES, max_gap_s)


@dataclass(frozen=True)
class JobSidecar:
    """A validated sidecar. ``input_path`` is in WSL form, already confined to the roots."""

    job_id: str | None = None
    options: SidecarOptions = SidecarOptions()
    metadata: dict[str, Any] | None = field(default=None, hash=False)
    input_path: str | None = None
    input_windows_path: str | None = None

    def client_echo(self) -> dict[str, Any]:
        """The ``client`` block echoed in the result and the error report."""
        return {"job_id": self.job_id, "metadata": self.metadata}

    def job_options(self, defaults: JobOptions) -> JobOptions:
        """``defaults`` with the options this sidecar sets."""
        merged = defaults
        if self.options.start_frame is not None:
            merged = dataclasses.replace(merged, start_frame=self.options.start_frame)
        if self.options.end_frame is not None:
            merged = dataclasses.replace(merged, end_frame=self.options.end_frame)
        if self.options.include_mesh is not None:
            merged = dataclasses.replace(merged, include_mesh=self.options.include_mesh)
        merged = dataclasses.replace(merged, **dict(self.options.outputs))
        if self.options.motion:
            merged = dataclasses.replace(merged, motion={**(merged.motion or {}), **self.options.motion})
        if merged.end_frame is not None and merged.end_frame <= merged.start_frame:
            raise _bad("options.end_frame", f"must be greater than start_frame ({merged.start_frame}), got {merged.end_frame}")
        return merged


def video_name_for_sidecar(name: str) -> str | None:
    """``abc.mp4.job.json`` -> ``abc.mp4``; None for a name that is not a sidecar."""
    if name.endswith(SIDECAR_SUFFIX) and len(name) > len(SIDECAR_SUFFIX):
        return name[: -len(SIDECAR_SUFFIX)]
    return None


def read_sidecar(path: Path, roots: Iterable[str], *, distro: str | None = None) -> JobSidecar:
    """Read and validate a sidecar file.

    Raises:
        JobError: E_BAD_SIDECAR, naming the field, for anything wrong with the content.
        OSError: the file could not be read (vanished, held open by Windows); the caller
            decides whether to retry, since the content may be fine.
    """
    raw = read_regular_file(path, MAX_SIDECAR_BYTES + 1)
    try:
        return parse_sidecar(raw, roots, distro=distro)
    except JobError as exc:
        exc.message = f"{path.name}: {exc.message}"
        exc.args = (exc.message,)
        raise


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """At most ``max_bytes`` of ``path``, which must be a regular file; never blocks.

    Anyone who can write the inbox can plant a FIFO (``open`` would wait for a writer forever,
    freezing the main loop), a symlink or a directory under a sidecar's name: these are refused
    as a bad sidecar, for good, rather than retried.

    Raises:
        JobError: E_BAD_SIDECAR for anything that is not a regular file.
        OSError: the file could not be read (vanished, held open by Windows).
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _bad(None, "is a symlink; sidecars are never followed", subject=path.name) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _bad(None, f"is {_file_kind(mode)}, not a regular file", subject=path.name)
        chunks, total = [], 0
        while total < max_bytes and (chunk := os.read(fd, max_bytes - total)):
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or other special file"


def parse_sidecar(raw: bytes | str, roots: Iterable[str], *, distro: str | None = None) -> JobSidecar:
    """Validate sidecar text (UTF-8, BOM and UTF-16 tolerated). Raises JobError(E_BAD_SIDECAR)."""
    document = _decode(raw)
    if not isinstance(document, dict):
        raise _bad(None, f"must be a JSON object, got {_json_type(document)}")
    job_id = _job_id(document.get("job_id"))  # first: a valid id names the report of any later defect
    try:
        _refuse_unknown_keys(document, TOP_LEVEL_KEYS, "")
        input_path, input_windows_path = _input_path(document.get("input_path"), roots, distro)
        return JobSidecar(
            job_id=job_id,
            options=parse_options(document.get("options")),
            metadata=_metadata(document.get("metadata")),
            input_path=input_path,
            input_windows_path=input_windows_path,
        )
    except JobError as exc:
        if job_id is not None:
            exc.answer_as = reply_to(job_id, document.get("metadata"))  # type: ignore[attr-defined]
        raise


def reply_to(job_id: str, metadata: Any) -> dict[str, Any]:
    """The ``client`` echo of a refused sidecar whose ``job_id`` is valid: the report goes out
    under that id (README, "Job sidecar"), with the metadata only where it is valid itself."""
    try:
        return {"job_id": job_id, "metadata": _metadata(metadata)}
    except JobError:
        return {"job_id": job_id, "metadata": None}


def answer_as(error: JobError) -> dict[str, Any] | None:
    """The client echo a sidecar refusal is published under, or None: under the video's name."""
    return getattr(error, "answer_as", None)


def _decode(raw: bytes | str) -> Any:
    size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    if size > MAX_SIDECAR_BYTES:
        raise _bad(None, f"is larger than {MAX_SIDECAR_BYTES} bytes")
    if isinstance(raw, bytes) and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # Notepad and PowerShell write a UTF-8 BOM
    try:
        # json.loads detects UTF-16/32 from bytes itself (PowerShell 5 writes UTF-16 LE).
        return json.loads(raw, parse_constant=_refuse_constant, object_pairs_hook=_refuse_duplicates)
    except JobError:
        raise
    except RecursionError:
        raise _bad(None, "is nested too deeply") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _bad(None, f"is not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise _bad(None, f"contains {name}, which is not JSON")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _bad(None, f"has the key {key!r} twice in one object")
        result[key] = value
    return result


def _refuse_unknown_keys(document: dict[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    unknown = sorted(set(document) - set(allowed))
    if unknown:
        names = ", ".join(repr(prefix + key) for key in unknown)
        owner = prefix.rstrip(".") or "the document"
        problem = f"has unknown key(s) {names}; allowed: {', '.join(prefix + k for k in allowed)}"
        raise _bad(prefix + unknown[0], problem, subject=owner)


def _job_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad("job_id", f"must be a string, got {_json_type(value)}")
    if not 1 <= len(value) <= MAX_JOB_ID_CHARS:
        raise _bad("job_id", f"must be 1 to {MAX_JOB_ID_CHARS} characters, got {len(value)}")
    if not JOB_ID_PATTERN.fullmatch(value):
        raise _bad("job_id", f"may hold only A-Z a-z 0-9 _ . - (not first: . -; not last: .), got {value!r}")
    if value.split(".")[0].upper() in _DEVICE_NAMES:
        raise _bad("job_id", f"is a Windows device name, which cannot be a file name: {value!r}")
    return value


def check_job_id(value: Any) -> str | None:
    """The sidecar's ``job_id`` rules, for any intake: ``JobError(E_BAD_SIDECAR)`` naming the field."""
    return _job_id(value)


def job_id_takes_a_video_name(job_id: str, own_name: str, extensions: list[str]) -> bool:
    """A job id that looks like a video file name would take another upload's outcome name
    (``hijack.mp4`` with job id ``victim.mp4``): allowed only as the input's own name."""
    return job_id != own_name and job_id.lower().endswith(tuple(ext.lower() for ext in extensions))


def parse_options(value: Any) -> SidecarOptions:
    """``options`` of a sidecar (or of a queue job's data, which takes the same options)."""
    if value is None:
        return SidecarOptions()
    if not isinstance(value, dict):
        raise _bad("options", f"must be a JSON object, got {_json_type(value)}")
    _refuse_unknown_keys(value, OPTION_KEYS, "options.")
    start = _integer(value.get("start_frame"), "options.start_frame", 0, MAX_FRAME_INDEX)
    end = _integer(value.get("end_frame"), "options.end_frame", 1, MAX_FRAME_INDEX)
    if start is not None and end is not None and end <= start:
        raise _bad("options.end_frame", f"must be greater than options.start_frame ({start}), got {end}")
    include_mesh = _boolean(value.get("include_mesh"), "options.include_mesh")
    priority = _integer(value.get("priority"), "options.priority", *PRIORITY_RANGE)
    outputs = tuple((key, flag) for key in OPTIONAL_OUTPUTS if (flag := _boolean(value.get(key), f"options.{key}")) is not None)
    motion = _motion(value.get("motion"))
    return SidecarOptions(start, end, include_mesh, _backend_hint(value.get("backend")), priority or 0, outputs, motion)


def _boolean(value: Any, name: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise _bad(name, f"must be true or false, got {_json_type(value)}")
    return value


def _motion(value: Any) -> dict[str, Any] | None:
    """``options.motion``: switch smoothing, gap filling or raw values per video, or set the gap."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("options.motion", f"must be a JSON object, got {_json_type(value)}")
    _refuse_unknown_keys(value, (*MOTION_SWITCHES, "max_gap_s"), "options.motion.")
    for key in MOTION_SWITCHES:
        if key in value and not isinstance(value[key], bool):
            raise _bad(f"options.motion.{key}", f"must be true or false, got {_json_type(value[key])}")
    if "max_gap_s" in value:
        gap = value["max_gap_s"]
        if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not 0 <= gap <= MAX_GAP_S_LIMIT:
            raise _bad("options.motion.max_gap_s", f"must be a number of seconds from 0 to {MAX_GAP_S_LIMIT:g}, got {_short_json(gap)}")
        value = value | {"max_gap_s": float(gap)}
    return value or None


def _integer(value: Any, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):  # bool is an int subclass
        raise _bad(name, f"must be an integer, got {_json_type(value)}")
    if not low <= value <= high:
        raise _bad(name, f"must be between {low} and {high}, got {value}")
    return value


def _backend_hint(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not BACKEND_HINT_PATTERN.fullmatch(value):
        raise _bad("options.backend", f"must be a backend name like \"phalp\" (a-z 0-9 _ -, up to 32), got {_short_json(value)}")
    return value


def _metadata(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("metadata", f"must be a JSON object, got {_json_type(value)}")
    if too_deep(value):
        raise _bad("metadata", f"is nested more than {MAX_METADATA_DEPTH} levels deep")
    try:
        # allow_nan=False as in the result writer: 1e400 parses to inf, which JSON cannot carry back.
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise _bad("metadata", "holds a number too large for JSON (it would come back as Infinity)") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # "\ud800" is valid JSON text but cannot be written as UTF-8
        raise _bad("metadata", "holds a lone UTF-16 surrogate (invalid Unicode)") from None
    if size > MAX_METADATA_BYTES:
        raise _bad("metadata", f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are echoed back")
    return value


def too_deep(value: Any, limit: int = MAX_METADATA_DEPTH) -> bool:
    """Whether parsed JSON nests objects/arrays more than ``limit`` levels (``value`` is level 1)."""
    if not isinstance(value, (dict, list)):
        return False
    if limit <= 0:
        return True
    children = value.values() if isinstance(value, dict) else value
    return any(too_deep(child, limit - 1) for child in children)


def _input_path(value: Any, roots: Iterable[str], distro: str | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, str):
        raise _bad("input_path", f"must be a string, got {_json_type(value)}")
    try:
        wsl_path = to_wsl(value, roots, distro=distro)
        return wsl_path, to_windows(wsl_path, distro=distro)
    except BadPath as exc:
        raise _bad("input_path", str(exc)) from None


def _bad(field_name: str | None, problem: str, *, subject: str | None = None) -> JobError:
    """The error for one defect; ``field_name`` None means the document as a whole."""
    return JobError(
        ErrorCode.BAD_SIDECAR,
        f"{MESSAGE_PREFIX}{subject or field_name or 'the document'} {problem}",
        stage="sidecar",
        details={"field": field_name},
    )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    return "a number"


def _short_json(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 80 else shown[:75] + "..."
