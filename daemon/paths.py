"""Windows <-> WSL names for the same file, and confinement to the configured roots.

The Node backend runs on Windows and names files ``C:\\Users\\x\\uploads\\a.mov``; the daemon
runs in WSL2 and opens ``/mnt/c/Users/x/uploads/a.mov``. Sidecars may use either form, and
results report both (issue 4). Conversion is purely lexical: it never touches the file system,
so it is safe to call on hostile input before anything is opened.

Rules, all of which raise ``BadPath`` (or its subclass ``PathOutsideRoots``):

- Only absolute paths: ``C:\\...``, ``/...``, UNC ``\\\\wsl$\\<distro>\\...`` or
  ``\\\\wsl.localhost\\<distro>\\...`` (and the ``\\\\?\\`` / ``\\\\.\\`` prefixes of those).
  Drive-relative ``C:foo``, rooted ``\\foo`` and other UNC servers are refused.
- ``\\`` and ``/`` are both separators everywhere: the producer is Windows, where a backslash
  cannot be part of a name.
- No ``..`` component at all (refused rather than resolved, so a path can never be steered
  out of a root), no NUL or other control characters, no lone surrogates, no component made
  only of dots/spaces, no component over 255 UTF-8 bytes (Linux NAME_MAX), no path over 4095
  bytes (PATH_MAX).
- On a Windows drive, also no ``<>:"|?*`` (``a.mp4:x`` is an NTFS stream), no trailing dot or
  space (Windows silently strips them, so two spellings would name one file) and no device
  names (``NUL.mp4`` is the null device on Windows 10).
- Drive paths compare case-insensitively against roots (NTFS upcases per character);
  Linux paths compare exactly.

The checks above are lexical. ``open_beneath`` is the one that touches the file system: it
opens a confined path component by component from its root with ``O_NOFOLLOW``, so no symbolic
link below a root is followed (a root itself may be one: it is configuration), and
``open_exact`` reopens that canonical path later and proves, through ``/proc/self/fd``, that the
descriptor is the file at exactly that path, so a folder swapped for a link in between is
refused instead of followed (issue 21, item 3).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import ErrorCode, JobError, PosedError

DRIVE_MOUNT_ROOT = "mnt"  # WSL automounts drive C: at /mnt/c (wsl.conf [automount] root)
WSL_UNC_HOSTS = ("wsl$", "wsl.localhost")
# Windows 10 before build 21354 knows only \\wsl$; Windows 11 understands both.
WINDOWS_UNC_PREFIX = "\\\\wsl$\\"
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4095
WINDOWS_FORBIDDEN_CHARS = frozenset('<>:"|?*')
WINDOWS_DEVICE_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)
_DRIVE_PREFIX = re.compile(r"^([A-Za-z]):/")  # "C:" alone means "current folder on C:"
_DRIVE_RELATIVE = re.compile(r"^[A-Za-z]:")
_REPR_LIMIT = 160


class BadPath(PosedError):
    """A path that cannot be mapped safely: relative, traversal, NUL, foreign UNC server, ..."""


class PathOutsideRoots(BadPath):
    """A well-formed path that lies outside every configured root."""


class PathThroughLink(BadPath):
    """A path that reaches its file only through a symbolic link below its root, or whose
    folders changed into one since it was checked."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_LINK_ERRNOS = (errno.ELOOP, errno.ENOTDIR)  # O_NOFOLLOW on a link: ELOOP, or ENOTDIR with O_DIRECTORY


@dataclass(frozen=True)
class _Parsed:
    drive: str | None  # lower-case letter for a Windows drive path, None for a Linux path
    parts: tuple[str, ...]  # components below the drive's root, or below "/"


def to_wsl(path: str, roots: Iterable[str], *, distro: str | None = None) -> str:
    """Return the WSL form of ``path`` (either form accepted), refusing paths outside ``roots``.

    Args:
        path: a Windows or WSL path, as received (for example from a job sidecar).
        roots: allowed directories, each in either form; a path equal to a root is inside it.
            No roots means nothing is allowed.
        distro: this WSL distribution's name; UNC paths naming another distro are refused.
            Defaults to ``$WSL_DISTRO_NAME``; unknown means any distro name is accepted.

    Raises:
        BadPath: ``path`` is malformed or unsafe (see the module docstring).
        PathOutsideRoots: ``path`` is well formed but not inside any root.
    """
    if isinstance(roots, str):  # a bare string would be iterated character by character
        raise TypeError("roots must be a list of paths, not one string")
    distro = _default_distro(distro)
    parsed = _parse(path, distro)
    allowed = [_parse(root, distro) for root in roots]
    if not any(_is_within(parsed, root) for root in allowed):
        shown = ", ".join(_render_wsl(root) for root in allowed) or "none configured"
        raise PathOutsideRoots(f"path {_short(path)} is outside the allowed roots ({shown})")
    return _render_wsl(parsed)


def open_beneath(path: str, roots: Iterable[str], flags: int, *, distro: str | None = None) -> tuple[int, str]:
    """Open ``path`` (confined by ``to_wsl``) walking down from its root, never following a
    symbolic link below the root; return the descriptor and the file's canonical path (the
    root's real path joined with the components walked).

    Raises:
        PathOutsideRoots: as ``to_wsl``.
        PathThroughLink: a component below the root is a symbolic link.
        OSError: anything else (missing, unreadable), for the caller to report.
    """
    wsl = to_wsl(path, roots, distro=distro)
    distro = _default_distro(distro)
    parsed = _parse(wsl, distro)
    root = max((r for r in (_parse(root, distro) for root in roots) if _is_within(parsed, r)), key=lambda r: len(_full_parts(r)))
    below = _full_parts(parsed)[len(_full_parts(root)):]
    top = os.path.realpath(_render_wsl(root))
    fd = os.open(top, _DIR_FLAGS & ~os.O_NOFOLLOW)
    try:
        for index, name in enumerate(below):
            last = index == len(below) - 1
            try:
                child = os.open(name, (flags | os.O_NOFOLLOW) if last else _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in _LINK_ERRNOS and _is_link(name, fd):
                    raise PathThroughLink(f"path {_short(path)} goes through a symbolic link below its root; links are not followed") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, os.path.join(top, *below)


def open_exact(path: str | os.PathLike[str], flags: int) -> int:
    """Open ``path`` (canonical: from ``open_beneath``) without following a link, and prove the
    descriptor is the file at exactly that path (``/proc/self/fd``): a folder on the way that
    was replaced by a symbolic link since the check raises ``PathThroughLink``."""
    wanted = os.path.abspath(os.fspath(path))
    fd = os.open(wanted, flags | os.O_NOFOLLOW)
    try:
        actual = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        actual = None  # no /proc: the walk at intake is the only check
    if actual is not None and actual != wanted:
        os.close(fd)
        raise PathThroughLink(f"{os.path.basename(wanted)} is no longer at the path that was checked (a folder on the way was replaced)")
    return fd


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def to_windows(path: str, *, distro: str | None = None) -> str | None:
    """Return the Windows form of ``path`` (either form accepted), or None if it has none.

    ``/mnt/c/x`` becomes ``C:\\x``; a Linux path becomes ``\\\\wsl$\\<distro>\\...`` when the
    distro name is known (argument or ``$WSL_DISTRO_NAME``) and every name is legal on Windows.

    Raises:
        BadPath: ``path`` is malformed or unsafe (see the module docstring).
    """
    distro = _default_distro(distro)
    return _render_windows(_parse(path, distro), distro)


def path_forms(path: str | os.PathLike[str], *, distro: str | None = None) -> dict[str, str | None]:
    """Both names of a file the daemon itself found, for the ``input`` block of a document.

    Never raises: a name Windows cannot express (say, with a newline) gets ``windows_path`` null.
    """
    absolute = os.path.abspath(os.fspath(path))
    try:
        windows_path = to_windows(absolute, distro=distro)
    except BadPath:
        windows_path = None
    return {"path": absolute, "windows_path": windows_path}


def _default_distro(distro: str | None) -> str | None:
    return distro if distro is not None else (os.environ.get("WSL_DISTRO_NAME") or None)


def _parse(path: str, distro: str | None) -> _Parsed:
    _check_characters(path)
    if path.startswith("\\") and path[1:2] not in ("\\", "/"):
        raise BadPath(f"path {_short(path)} is relative to the current drive; give the drive letter")
    text = _strip_device_prefix(path.replace("\\", "/"))
    if text.startswith("//"):
        text = _unc_to_linux(text, path, distro)
    drive = _DRIVE_PREFIX.match(text)
    if drive:
        parsed = _Parsed(drive.group(1).lower(), _split(text[2:], path))
    elif _DRIVE_RELATIVE.match(text) or not text.startswith("/"):
        raise BadPath(f"path {_short(path)} is relative; give an absolute Windows or WSL path")
    else:
        parsed = _linux_or_drive(_split(text, path))
    if parsed.drive is not None:
        for part in parsed.parts:
            _check_windows_name(part, path)
    if len(_render_wsl(parsed).encode("utf-8")) > PATH_MAX_BYTES:
        raise BadPath(f"path {_short(path)} is longer than {PATH_MAX_BYTES} bytes")
    return parsed


def _check_characters(path: str) -> None:
    if not isinstance(path, str):
        raise BadPath(f"path must be a string, got {type(path).__name__}")
    if not path:
        raise BadPath("path is empty")
    if "\x00" in path:
        raise BadPath(f"path {_short(path)} contains a NUL byte")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        raise BadPath(f"path {_short(path)} contains a control character")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in path):
        raise BadPath(f"path {_short(path)} is not valid Unicode (lone surrogate)")


def _strip_device_prefix(text: str) -> str:
    """``\\\\?\\C:\\x`` and ``\\\\.\\C:\\x`` name ``C:\\x``; ``\\\\?\\UNC\\h\\s`` names ``\\\\h\\s``."""
    for prefix in ("//?/", "//./"):
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            if rest[:4].upper() == "UNC/":
                return "//" + rest[4:]
            if _DRIVE_PREFIX.match(rest):
                return rest
    return text


def _unc_to_linux(text: str, original: str, distro: str | None) -> str:
    host, _, rest = text[2:].partition("/")
    if host.casefold() not in WSL_UNC_HOSTS:
        raise BadPath(f"path {_short(original)} is on UNC server {host!r}; only \\\\wsl$ and \\\\wsl.localhost are accepted")
    share, _, below = rest.partition("/")
    if not share:
        raise BadPath(f"path {_short(original)} names no WSL distribution after \\\\{host}")
    if distro is not None and share.casefold() != distro.casefold():
        raise BadPath(f"path {_short(original)} is in WSL distribution {share!r}, not in {distro!r}")
    return "/" + below


def _split(text: str, original: str) -> tuple[str, ...]:
    parts = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise BadPath(f"path {_short(original)} contains '..'; traversal is not allowed")
        if part.strip(". ") == "":
            raise BadPath(f"path {_short(original)} has a name made only of dots and spaces: {part!r}")
        if len(part.encode("utf-8")) > NAME_MAX_BYTES:
            raise BadPath(f"path {_short(original)} has a name longer than {NAME_MAX_BYTES} bytes")
        parts.append(part)
    return tuple(parts)


def _linux_or_drive(parts: tuple[str, ...]) -> _Parsed:
    if len(parts) >= 2 and parts[0] == DRIVE_MOUNT_ROOT and len(parts[1]) == 1 and parts[1].isascii() and parts[1].isalpha():
        return _Parsed(parts[1].lower(), parts[2:])
    return _Parsed(None, parts)


def _check_windows_name(part: str, original: str) -> None:
    bad = sorted(set(part) & WINDOWS_FORBIDDEN_CHARS)
    if bad:
        raise BadPath(f"path {_short(original)} has a name with characters Windows forbids ({''.join(bad)}): {part!r}")
    if part[-1] in ". ":
        raise BadPath(f"path {_short(original)} has a name ending in a dot or space, which Windows strips: {part!r}")
    if part.split(".")[0].rstrip(" ").upper() in WINDOWS_DEVICE_NAMES:
        raise BadPath(f"path {_short(original)} uses the Windows device name {part!r}")


def _is_within(path: _Parsed, root: _Parsed) -> bool:
    inner, outer = _full_parts(path), _full_parts(root)
    if len(outer) > len(inner):
        return False
    # Below /mnt/<drive> the names are Windows names; the prefix itself is already canonical.
    folded_from = 2 if path.drive is not None else len(inner)
    for index, (mine, allowed) in enumerate(zip(inner, outer)):
        same = _fold_case(mine) == _fold_case(allowed) if index >= folded_from else mine == allowed
        if not same:
            return False
    return True


def _fold_case(name: str) -> str:
    # NTFS compares names by upcasing one UTF-16 unit at a time; str.upper() would also map
    # "ß" to "SS" and so match names Windows keeps apart.
    return "".join(ch.upper() if len(ch.upper()) == 1 else ch for ch in name)


def _full_parts(parsed: _Parsed) -> tuple[str, ...]:
    prefix = () if parsed.drive is None else (DRIVE_MOUNT_ROOT, parsed.drive)
    return prefix + parsed.parts


def _render_wsl(parsed: _Parsed) -> str:
    return "/" + "/".join(_full_parts(parsed))


def _render_windows(parsed: _Parsed, distro: str | None) -> str | None:
    if parsed.drive is not None:
        return f"{parsed.drive.upper()}:\\" + "\\".join(parsed.parts)
    if distro is None:
        return None
    try:
        for part in parsed.parts:
            _check_windows_name(part, "")
    except BadPath:
        return None
    return WINDOWS_UNC_PREFIX + distro + "\\" + "\\".join(parsed.parts)


def _short(path: str) -> str:
    shown = repr(path)
    return shown if len(shown) <= _REPR_LIMIT else shown[: _REPR_LIMIT - 5] + "...'"


SIDECAR_SUFFIX = ".job.json"


def sidecar_path_for(video: Path) -> Path:
    """``<inbox>/abc.mp4`` -> ``<inbox>/abc.mp4.job.json``: the producer's per-video options.

    Here, not in ``intake.sidecar``, because publishing moves a sidecar along with its video."""
    return video.with_name(video.name + SIDECAR_SUFFIX)


def unsupported_extension(path: Path, extensions: Iterable[str]) -> JobError | None:
    """E_UNSUPPORTED for a name whose extension is not accepted (any letter case), else None.
    Needs no reading: the folder intake answers it at once, the worker check repeats it."""
    accepted = [ext.lower() for ext in extensions]
    if path.suffix.lower() in accepted:
        return None
    return JobError(ErrorCode.UNSUPPORTED, f"{path.name}: extension {path.suffix!r} is not one of {', '.join(accepted)}", stage="probe")
