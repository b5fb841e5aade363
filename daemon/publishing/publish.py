"""Atomic publication into the outbox, and moving inputs to their outcome folder.

Readers must never see a partial file: documents are written to ``<outbox>/.tmp/`` (a place a
consumer never looks), fsynced, then given their final name in one step. The final step uses
``link`` (fails if the name exists, so a published file is never replaced) and falls back to
``rename`` after an existence check where the file system has no hard links. On DrvFs a Windows
process holding a handle makes rename fail with EPERM/EACCES/EBUSY for a while: retry with
backoff. A full or read-only outbox raises ``PublishError``; the caller keeps the input and
retries the job later.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from daemon.errors import PublishError
from daemon.log import get_logger
from daemon.publishing.naming import MAX_NAME_BYTES, printable_name, reserve_stem

log = get_logger(__name__)
T = TypeVar("T")

TMP_DIR = ".tmp"
TRANSIENT = {errno.EPERM, errno.EACCES, errno.EBUSY, errno.ETXTBSY}  # Windows holding a handle
FATAL = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}
NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


class PublishBlocked(PublishError):
    """A Windows process holds the file (EPERM/EACCES/EBUSY): try again later, do not sleep."""


def tmp_dir(outbox: Path) -> Path:
    path = outbox / TMP_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_tmp_path(outbox: Path, label: str, owner: str = "") -> Path:
    """A unique temp path inside the outbox (same file system, so publishing is a rename).

    ``owner`` (the writer's tag, first in the name) lets a sweeper tell a dead writer's file."""
    return tmp_dir(outbox) / f"{owner or 'untagged'}.{uuid.uuid4().hex}.{label}.partial"


def companion_tmp_path(tmp_path: Path, kind: str) -> Path:
    """The temp path of a file that belongs with ``tmp_path`` (a result's frames, exports):
    ``<owner>.<uuid>.result.partial`` -> ``<owner>.<uuid>.<kind>.partial``, the same unique
    prefix and owner tag, so one listing finds every file of an unfinished result."""
    return tmp_path.with_name(f"{_result_prefix(tmp_path)}.{kind}.partial")


def companions_of(tmp_path: Path) -> list[Path]:
    """Every temp file sharing ``tmp_path``'s unique prefix, ``tmp_path`` itself excluded."""
    prefix = _result_prefix(tmp_path) + "."
    try:
        names = os.listdir(tmp_path.parent)
    except OSError:
        return []
    return [tmp_path.parent / name for name in names if name.startswith(prefix) and name != tmp_path.name]


def remove_tmp(path: Path) -> None:
    """Remove one temp entry: a file, or an export's folder of row files (never followed if a link)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _result_prefix(tmp_path: Path) -> str:
    """``<owner>.<uuid>`` of ``<owner>.<uuid>.<label>.partial`` (the name without its label)."""
    return tmp_path.name.rsplit(".", 2)[0]


def retry_transient(action: Callable[[], T], *, what: str, deadline_s: float) -> T:
    """Run ``action``, retrying Windows sharing violations with capped exponential backoff."""
    delay, give_up = 0.05, time.monotonic() + deadline_s
    while True:
        try:
            return action()
        except OSError as exc:
            if exc.errno in FATAL:
                raise PublishError(f"{what}: {exc.strerror} ({errno.errorcode.get(exc.errno, exc.errno)})") from exc
            if exc.errno not in TRANSIENT or time.monotonic() + delay > give_up:
                raise
            log.warning("publish.retry", what=what, error=errno.errorcode.get(exc.errno), delay_s=round(delay, 3))
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def publish_document(
    tmp_path: Path,
    outbox: Path,
    wanted_stem: str,
    suffix: str,
    *,
    deadline_s: float = 30.0,
    before_link: Callable[[Path], None] | None = None,
) -> Path:
    """Give a finished, fsynced temp file its unique final name. Returns the published path.

    ``before_link(final)`` runs before each attempt to take a name (the outcome's receipt).
    """
    for _ in range(100):
        final = outbox / f"{reserve_stem(outbox, wanted_stem)}{suffix}"
        if before_link is not None:
            before_link(final)
        try:
            retry_transient(lambda: _link_no_replace(tmp_path, final), what=f"publish {final.name}", deadline_s=deadline_s)
        except FileExistsError:
            continue  # another daemon took the name between reserve and link; pick the next
        except OSError as exc:
            if exc.errno in TRANSIENT:
                raise PublishBlocked(f"publishing {final.name} is blocked: {exc}") from exc
            raise PublishError(f"publishing {final.name} failed: {exc}") from exc
        _fsync_dir(outbox)
        return final
    raise PublishError(f"could not find a free name for {wanted_stem}{suffix} in {outbox}")


def publish_set(
    parts: list[tuple[str, Path]],
    outbox: Path,
    wanted_stem: str,
    *,
    last: Callable[[str], tuple[str, Path]],
    deadline_s: float = 30.0,
    before_link: Callable[[str], None] | None = None,
) -> tuple[str, Path]:
    """Publish several files under one stem, Maildir-style: each ``(suffix, tmp)`` in ``parts``
    first, then the file ``last(stem)`` makes once the stem is known (the manifest, which names
    the others), so whoever sees the last file sees all of them, complete.

    ``before_link(stem)`` runs before the first link under a stem (the receipt that lets a
    restarted daemon clean up after a crash between two renames). If another daemon takes any
    of the names first, the parts already linked are taken back and the next stem is tried.
    Returns the stem and the last file's published path.
    """
    for _ in range(100):
        stem = reserve_stem(outbox, wanted_stem)
        if before_link is not None:
            before_link(stem)
        linked: list[Path] = []
        try:
            for suffix, tmp in parts:
                linked.append(_link_part(tmp, outbox / f"{stem}{suffix}", deadline_s))
            suffix, final_tmp = last(stem)
            final = _link_part(final_tmp, outbox / f"{stem}{suffix}", deadline_s)
        except FileExistsError:
            _take_back(linked, parts)
            continue  # another daemon took a name between reserve and link; pick the next
        except PublishError:
            _take_back(linked, parts)
            raise
        _fsync_dir(outbox)
        return stem, final
    raise PublishError(f"could not find a free name for {wanted_stem} in {outbox}")


def _link_part(tmp: Path, final: Path, deadline_s: float) -> Path:
    try:
        retry_transient(lambda: _link_no_replace(tmp, final), what=f"publish {final.name}", deadline_s=deadline_s)
    except (FileExistsError, PublishError):
        raise
    except OSError as exc:
        if exc.errno in TRANSIENT:  # Windows holds a file: the caller schedules another try
            raise PublishBlocked(f"publishing {final.name} is blocked: {exc}") from exc
        raise PublishError(f"publishing {final.name} failed: {exc}") from exc
    return final


def _take_back(linked: list[Path], parts: list[tuple[str, Path]]) -> None:
    """Move published parts back to their temp names: no manifest names them yet, so no
    consumer can have started on them."""
    for final, (_, tmp) in zip(linked, parts):
        try:
            os.rename(final, tmp)
        except OSError as exc:
            log.error("publish.take_back_failed", path=str(final), error=str(exc))


def _link_no_replace(source: Path, target: Path) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from exc
        if exc.errno not in NO_LINKS:
            raise
        # No hard links here: check, then rename. Only daemons that claimed a video publish,
        # so the window between check and rename is not contended in practice.
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from exc
        os.rename(source, target)
        return
    os.unlink(source)


def write_json_tmp(outbox: Path, label: str, document: dict[str, Any], owner: str = "") -> Path:
    """Write a small document to a new temp file, fsynced, ready for ``publish_document``."""
    path = new_tmp_path(outbox, label, owner)
    try:
        _write_synced(path, _utf8_json(document))
    except OSError as exc:
        path.unlink(missing_ok=True)
        if exc.errno in FATAL:
            raise PublishError(f"writing {label} to {outbox}: {exc.strerror}") from exc
        raise
    return path


def _write_synced(path: Path, data: bytes) -> None:
    """Create ``path`` (never clobbering) with ``data`` on disk before it can be renamed."""
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _utf8_json(document: dict[str, Any]) -> bytes:
    """Indented JSON in valid UTF-8. A name with bytes that are not UTF-8 (legal on Linux)
    reaches us as lone surrogates, which cannot be encoded: they become U+FFFD instead of
    an exception in the main loop (issue 5)."""
    return printable_name(json.dumps(document, ensure_ascii=False, indent=1, allow_nan=False)).encode("utf-8")


def replace_json(path: Path, document: dict[str, Any], *, deadline_s: float = 0.0) -> None:
    """Atomically rewrite a file others poll (the status file): temp + fsync + replace.

    One try by default: the status file is rewritten every interval anyway, and sleeping here
    would stop the main loop (the next write is the retry)."""
    outbox_tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        _write_synced(outbox_tmp, _utf8_json(document))
        retry_transient(lambda: os.replace(outbox_tmp, path), what=f"replace {path.name}", deadline_s=deadline_s)
    finally:
        outbox_tmp.unlink(missing_ok=True)


def move_to(source: Path, dest_dir: Path, *, deadline_s: float = 30.0) -> Path:
    """Move an input to its outcome folder under a name that does not clobber an older one.

    Uploaders can write into the inbox, so ``done``/``failed`` inside it may have been replaced
    by a symlink: the folder is opened with ``O_NOFOLLOW`` and the rename is made relative to
    that descriptor, so an input is never moved through a symlink (e.g. into /etc/cron.d).
    """
    _make_outcome_dir(source, dest_dir)
    try:
        fd = os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise OSError(exc.errno, f"{dest_dir} is not a real directory (a symlink?); inputs are never moved through one") from exc
        raise
    try:
        name, n = source.name, 1
        while _exists_at(name, fd):
            n += 1
            name = numbered_name(source.name, n)
        retry_transient(lambda: os.rename(source, name, dst_dir_fd=fd), what=f"move {source.name}", deadline_s=deadline_s)
    finally:
        os.close(fd)
    return dest_dir / name


def free_name_in(dest_dir: Path, name: str) -> str:
    """The name ``move_to`` will give ``name`` in ``dest_dir`` if nothing arrives there first."""
    candidate, n = name, 1
    while os.path.lexists(dest_dir / candidate):
        n += 1
        candidate = numbered_name(name, n)
    return candidate


def numbered_name(name: str, n: int) -> str:
    """``clip~2.mp4`` for ``clip.mp4``: ``~N`` before the type suffix, the numbering rule outcome
    names follow too (``clip.mp4~2.result.json``, ``naming.reserve_stem``; README). The stem is
    shortened so the name stays within 255 bytes."""
    path = Path(name)
    stem, suffix, mark = path.stem, path.suffix, f"~{n}"
    if len(os.fsencode(mark + suffix)) >= MAX_NAME_BYTES // 2:  # an absurd "extension": number the whole name
        stem, suffix = name, ""
    room = MAX_NAME_BYTES - len(os.fsencode(mark + suffix))
    encoded = os.fsencode(stem)
    if len(encoded) > room:
        cut = room
        while cut > 0 and encoded[cut] & 0xC0 == 0x80:  # never split a UTF-8 sequence
            cut -= 1
        stem = os.fsdecode(encoded[:cut])
    return f"{stem}{mark}{suffix}"


def _exists_at(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _make_outcome_dir(source: Path, dest_dir: Path) -> None:
    try:
        dest_dir.mkdir(exist_ok=True)
    except FileNotFoundError:
        # Never re-create a vanished inbox (an unmounted /mnt/c) just to make done/ inside it;
        # a separately configured folder may need its parents.
        if os.path.abspath(dest_dir.parent) == os.path.abspath(source.parent):
            raise
        dest_dir.mkdir(parents=True, exist_ok=True)


def _fsync_dir(path: Path) -> None:
    """Make the new directory entry durable; some file systems (9p) refuse, which is fine."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
