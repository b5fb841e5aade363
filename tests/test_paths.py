"""Windows <-> WSL path mapping (issue 4): table tests, hostile inputs, properties."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.errors import PosedError
from daemon.paths import (
    NAME_MAX_BYTES,
    WINDOWS_DEVICE_NAMES,
    WINDOWS_FORBIDDEN_CHARS,
    BadPath,
    PathOutsideRoots,
    path_forms,
    to_windows,
    to_wsl,
)

DISTRO = "Ubuntu-22.04"
ROOTS = ("C:\\Users\\x\\uploads", "/home/posed/inbox", "/mnt/d/Media Drop")


def wsl(path: str) -> str:
    return to_wsl(path, ROOTS, distro=DISTRO)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("C:\\Users\\x\\uploads\\a.mov", "/mnt/c/Users/x/uploads/a.mov"),
        ("c:\\Users\\x\\uploads\\a.mov", "/mnt/c/Users/x/uploads/a.mov"),
        ("C:/Users/x/uploads/a.mov", "/mnt/c/Users/x/uploads/a.mov"),
        ("C:\\Users/x\\uploads/sub\\a.mov", "/mnt/c/Users/x/uploads/sub/a.mov"),
        ("C:\\\\Users\\\\x\\uploads\\.\\a.mov", "/mnt/c/Users/x/uploads/a.mov"),
        ("C:\\USERS\\X\\UPLOADS\\A.MOV", "/mnt/c/USERS/X/UPLOADS/A.MOV"),
        ("/mnt/c/Users/x/uploads/a.mov", "/mnt/c/Users/x/uploads/a.mov"),
        ("/mnt/C/Users/x/uploads/a.mov", "/mnt/c/Users/x/uploads/a.mov"),
        ("/mnt/c/users/X/Uploads/a.mov", "/mnt/c/users/X/Uploads/a.mov"),
        ("/mnt/c/Users/x/uploads/", "/mnt/c/Users/x/uploads"),
        ("/mnt/c\\Users\\x\\uploads\\a.mov", "/mnt/c/Users/x/uploads/a.mov"),
        ("D:\\Media Drop\\run 1 (final).mp4", "/mnt/d/Media Drop/run 1 (final).mp4"),
        ("D:\\media drop\\Läufer Ærø 走る.mp4", "/mnt/d/media drop/Läufer Ærø 走る.mp4"),
        ("C:\\Users\\x\\uploads\\🏃 sprint.mp4", "/mnt/c/Users/x/uploads/🏃 sprint.mp4"),
        ("\\\\wsl$\\Ubuntu-22.04\\home\\posed\\inbox\\a.mp4", "/home/posed/inbox/a.mp4"),
        ("\\\\wsl.localhost\\Ubuntu-22.04\\home\\posed\\inbox\\a.mp4", "/home/posed/inbox/a.mp4"),
        ("\\\\WSL.LOCALHOST\\ubuntu-22.04\\home\\posed\\inbox\\a.mp4", "/home/posed/inbox/a.mp4"),
        ("//wsl$/Ubuntu-22.04/home/posed/inbox/a.mp4", "/home/posed/inbox/a.mp4"),
        ("\\\\wsl$\\Ubuntu-22.04\\mnt\\c\\Users\\x\\uploads\\a.mp4", "/mnt/c/Users/x/uploads/a.mp4"),
        ("\\\\?\\C:\\Users\\x\\uploads\\a.mov", "/mnt/c/Users/x/uploads/a.mov"),
        ("\\\\.\\C:\\Users\\x\\uploads\\a.mov", "/mnt/c/Users/x/uploads/a.mov"),
        ("\\\\?\\UNC\\wsl$\\Ubuntu-22.04\\home\\posed\\inbox\\a.mp4", "/home/posed/inbox/a.mp4"),
        ("/home/posed/inbox/sub/dir/a.mp4", "/home/posed/inbox/sub/dir/a.mp4"),
        ("/home/posed/inbox", "/home/posed/inbox"),
        ("/home//posed/./inbox/a.mp4", "/home/posed/inbox/a.mp4"),
        ("/home/posed/inbox/..a.mp4", "/home/posed/inbox/..a.mp4"),
        ("/home/posed/inbox/a..mp4", "/home/posed/inbox/a..mp4"),
    ],
)
def test_valid_paths_map_to_wsl_form(given: str, expected: str) -> None:
    assert wsl(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/mnt/c/Users/x/uploads/a.mov", "C:\\Users\\x\\uploads\\a.mov"),
        ("/mnt/c", "C:\\"),
        ("/mnt/d/Media Drop/Läufer 走る.mp4", "D:\\Media Drop\\Läufer 走る.mp4"),
        ("c:/Users/x/a.mov", "C:\\Users\\x\\a.mov"),
        ("C:\\Users\\x\\a.mov", "C:\\Users\\x\\a.mov"),
        ("/home/posed/inbox/a.mp4", "\\\\wsl$\\Ubuntu-22.04\\home\\posed\\inbox\\a.mp4"),
        ("\\\\wsl.localhost\\Ubuntu-22.04\\home\\a.mp4", "\\\\wsl$\\Ubuntu-22.04\\home\\a.mp4"),
        ("/", "\\\\wsl$\\Ubuntu-22.04\\"),
        ("/home/posed/what?.mp4", None),  # legal on Linux, no Windows spelling
        ("/home/posed/trailing.", None),
        ("/mnt/wsl/shared/a.mp4", "\\\\wsl$\\Ubuntu-22.04\\mnt\\wsl\\shared\\a.mp4"),
    ],
)
def test_paths_map_to_windows_form(given: str, expected: str | None) -> None:
    assert to_windows(given, distro=DISTRO) == expected


def test_linux_path_has_no_windows_form_when_the_distro_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSL_DISTRO_NAME", raising=False)
    assert to_windows("/home/posed/a.mp4") is None
    assert to_windows("/mnt/c/a.mp4") == "C:\\a.mp4"


def test_distro_defaults_to_the_wsl_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSL_DISTRO_NAME", "Debian")
    assert to_windows("/home/a.mp4") == "\\\\wsl$\\Debian\\home\\a.mp4"
    with pytest.raises(BadPath, match="Ubuntu"):
        to_wsl("\\\\wsl$\\Ubuntu\\home\\a.mp4", ["/home"])


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("C:\\Users\\x\\uploads\\..\\secret.txt", "'..'"),
        ("C:\\Users\\x\\uploads\\..", "'..'"),
        ("/mnt/c/Users/x/uploads/../../../etc/passwd", "'..'"),
        ("/home/posed/inbox/../../../etc/shadow", "'..'"),
        ("C:/Users/x/uploads/sub/..\\..\\..\\Windows", "'..'"),
        ("\\\\wsl$\\Ubuntu-22.04\\home\\posed\\inbox\\..\\..\\root", "'..'"),
        ("C:\\Users\\x\\uploads\\...\\a.mp4", "only of dots"),
        ("C:\\Users\\x\\uploads\\. .\\a.mp4", "only of dots"),
        ("relative/a.mp4", "relative"),
        ("a.mp4", "relative"),
        ("./a.mp4", "relative"),
        ("..\\a.mp4", "relative"),
        ("C:a.mp4", "relative"),
        ("C:", "relative"),
        ("\\Users\\x\\uploads\\a.mp4", "current drive"),
        ("~/a.mp4", "relative"),
        ("", "empty"),
        ("C:\\Users\\x\\uploads\\a\x00.mp4", "NUL"),
        ("/home/posed/inbox/a\x00/../../etc", "NUL"),
        ("/home/posed/inbox/a\nb.mp4", "control"),
        ("/home/posed/inbox/a\ud800.mp4", "surrogate"),
        ("\\\\fileserver\\share\\a.mp4", "UNC server 'fileserver'"),
        ("//fileserver/share/a.mp4", "UNC server"),
        ("\\\\localhost\\c$\\Users\\x\\uploads\\a.mp4", "UNC server"),
        ("\\\\?\\Volume{1b3b1146-4076-11e1-84aa-806e6f6e6963}\\a.mp4", "UNC server"),
        ("\\\\wsl$\\", "no WSL distribution"),
        ("\\\\wsl$\\Debian\\home\\posed\\inbox\\a.mp4", "Debian"),
        ("C:\\Users\\x\\uploads\\a.mp4:Zone.Identifier", "forbids"),
        ("C:\\Users\\x\\uploads\\what?.mp4", "forbids"),
        ("/mnt/c/Users/x/uploads/a<b>.mp4", "forbids"),
        ("C:\\Users\\x\\uploads\\a.mp4.", "ending in a dot"),
        ("C:\\Users\\x\\uploads\\a.mp4 ", "ending in a dot or space"),
        ("C:\\Users\\x\\uploads\\NUL.mp4", "device"),
        ("C:\\Users\\x\\uploads\\com1", "device"),
        ("C:\\Users\\x\\uploads\\" + "a" * 252 + ".mp4", "longer than 255"),
        ("/home/posed/inbox/" + "走" * 86, "longer than 255"),  # 86 * 3 = 258 bytes
        ("/home/posed/inbox/" + "/".join(["d" * 200] * 21), "longer than 4095"),
    ],
)
def test_hostile_paths_are_refused_with_a_reason(given: str, reason: str) -> None:
    with pytest.raises(BadPath, match=reason):
        wsl(given)


@pytest.mark.parametrize(
    "given",
    [
        "/etc/passwd",
        "/",
        "C:\\Windows\\System32\\config\\SAM",
        "C:\\Users\\x\\uploads-evil\\a.mp4",  # shares a prefix string, not a directory
        "C:\\Users\\x",
        "E:\\Users\\x\\uploads\\a.mp4",  # same folders, other drive
        "/mnt/c/Users/x/uploadsX",
        "/home/posed/inbox2/a.mp4",
        "/HOME/posed/inbox/a.mp4",  # Linux names are case-sensitive
        "/home/Posed/inbox/a.mp4",
        "\\\\wsl$\\Ubuntu-22.04\\etc\\passwd",
        "/mnt/d/Media Drop Extra/a.mp4",
        "/mnt/wsl/a.mp4",
    ],
)
def test_paths_outside_the_roots_are_refused(given: str) -> None:
    with pytest.raises(PathOutsideRoots, match="outside the allowed roots"):
        wsl(given)


def test_roots_given_as_one_string_are_a_programming_error() -> None:
    with pytest.raises(TypeError, match="list of paths"):
        to_wsl("/home/posed/inbox/a.mp4", "/home/posed/inbox")


def test_no_roots_means_nothing_is_allowed() -> None:
    with pytest.raises(PathOutsideRoots, match="none configured"):
        to_wsl("/home/posed/inbox/a.mp4", [], distro=DISTRO)


def test_drive_roots_compare_case_insensitively_but_keep_the_given_spelling() -> None:
    assert to_wsl("c:\\USERS\\X\\Uploads\\A.mp4", ["C:\\Users\\x\\uploads"]) == "/mnt/c/USERS/X/Uploads/A.mp4"
    assert to_wsl("/mnt/c/users/x/UPLOADS/a.mp4", ["/mnt/c/Users/x/uploads"]) == "/mnt/c/users/x/UPLOADS/a.mp4"


def test_case_folding_follows_ntfs_not_full_unicode_folding() -> None:
    # NTFS upcases one character at a time: "ß" stays "ß", so "Straße" is not "STRASSE".
    assert to_wsl("C:\\STRAßE\\a.mp4", ["C:\\straße"]) == "/mnt/c/STRAßE/a.mp4"
    with pytest.raises(PathOutsideRoots):
        to_wsl("C:\\STRASSE\\a.mp4", ["C:\\straße"])


def test_a_root_in_either_form_confines_both_forms() -> None:
    for root in ("/mnt/c/Users/x/uploads", "C:\\Users\\x\\uploads", "\\\\wsl$\\U\\mnt\\c\\Users\\x\\uploads"):
        assert to_wsl("C:\\Users\\x\\uploads\\a.mp4", [root], distro="U") == "/mnt/c/Users/x/uploads/a.mp4"
        assert to_wsl("/mnt/c/Users/x/uploads/a.mp4", [root], distro="U") == "/mnt/c/Users/x/uploads/a.mp4"


def test_a_linux_root_above_the_mount_point_contains_drive_paths() -> None:
    assert to_wsl("C:\\a.mp4", ["/mnt"]) == "/mnt/c/a.mp4"
    assert to_wsl("C:\\a.mp4", ["/"]) == "/mnt/c/a.mp4"


def test_errors_are_posed_errors_and_outside_is_a_kind_of_bad_path() -> None:
    assert issubclass(BadPath, PosedError)
    assert issubclass(PathOutsideRoots, BadPath)


def test_non_string_input_is_refused() -> None:
    with pytest.raises(BadPath, match="string"):
        to_wsl(b"/home/posed/inbox/a.mp4", ROOTS)  # type: ignore[arg-type]


def test_a_very_long_hostile_path_gives_a_short_message() -> None:
    with pytest.raises(BadPath) as caught:
        wsl("C:\\" + "..\\" * 5000 + "x")
    assert len(str(caught.value)) < 400


def test_path_forms_reports_both_names_and_never_raises(tmp_path) -> None:
    forms = path_forms("/mnt/c/Users/x/in/a.mp4", distro=DISTRO)
    assert forms == {"path": "/mnt/c/Users/x/in/a.mp4", "windows_path": "C:\\Users\\x\\in\\a.mp4"}
    odd = path_forms(tmp_path / "line\nbreak.mp4", distro=DISTRO)
    assert odd["path"].endswith("line\nbreak.mp4") and odd["windows_path"] is None
    assert path_forms("relative.mp4", distro=DISTRO)["path"].startswith("/")


# --- properties -------------------------------------------------------------------------

_NAME_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc"),
    blacklist_characters="/\\" + "".join(WINDOWS_FORBIDDEN_CHARS),
)


def _is_valid_windows_name(name: str) -> bool:
    return (
        name.strip(". ") != ""
        and name[-1] not in ". "
        and len(name.encode("utf-8")) <= NAME_MAX_BYTES
        and name.split(".")[0].rstrip(" ").upper() not in WINDOWS_DEVICE_NAMES
    )


windows_names = st.text(_NAME_CHARS, min_size=1, max_size=40).filter(_is_valid_windows_name)
drive_letters = st.sampled_from("abcdefghijklmnopqrstuvwxyz")


@settings(max_examples=200, deadline=None)
@given(drive=drive_letters, parts=st.lists(windows_names, min_size=0, max_size=6), root_depth=st.integers(0, 6))
def test_round_trip_of_valid_drive_paths(drive: str, parts: list[str], root_depth: int) -> None:
    wsl_path = "/mnt/" + drive + "".join("/" + p for p in parts)
    root = "/mnt/" + drive + "".join("/" + p for p in parts[:root_depth])
    windows_path = to_windows(wsl_path, distro=DISTRO)
    assert windows_path is not None
    assert to_wsl(windows_path, [root], distro=DISTRO) == wsl_path
    assert to_windows(to_wsl(windows_path, [root], distro=DISTRO), distro=DISTRO) == windows_path
    assert to_wsl(windows_path.replace("\\", "/"), [_folded(root).replace("/MNT/", "/mnt/")], distro=DISTRO) == wsl_path


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(windows_names, min_size=1, max_size=6))
def test_round_trip_of_valid_linux_paths_through_wsl_unc(parts: list[str]) -> None:
    linux_path = "/home/" + "/".join(parts)
    unc = to_windows(linux_path, distro=DISTRO)
    assert unc is not None and unc.startswith("\\\\wsl$\\Ubuntu-22.04\\home\\")
    assert to_wsl(unc, ["/home"], distro=DISTRO) == linux_path


_HOSTILE_PIECES = st.sampled_from(
    ["..", ".", "", "/", "\\", "C:", "c:", "D:", "mnt", "c", "Users", "x", "uploads", "uploads-evil", "home",
     "posed", "inbox", "wsl$", "wsl.localhost", "Ubuntu-22.04", "server", "?", "UNC", "a.mp4", " ", "...",
     "\x00", "NUL", "走", "Media Drop", "%2e%2e", "~"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(st.one_of(_HOSTILE_PIECES, st.text(max_size=6)), max_size=14), seps=st.lists(st.sampled_from(["/", "\\", ""]), min_size=14, max_size=14))
def test_accepted_paths_never_escape_the_roots(pieces: list[str], seps: list[str]) -> None:
    candidate = "".join(piece + sep for piece, sep in zip(pieces, seps))
    try:
        result = wsl(candidate)
    except BadPath:
        return
    assert result.startswith("/") and posixpath.normpath(result) == result
    assert ".." not in result.split("/")
    inside = [
        result == "/home/posed/inbox" or result.startswith("/home/posed/inbox/"),
        _folded(result) == _folded("/mnt/c/Users/x/uploads") or _folded(result).startswith(_folded("/mnt/c/Users/x/uploads/")),
        _folded(result) == _folded("/mnt/d/Media Drop") or _folded(result).startswith(_folded("/mnt/d/Media Drop/")),
    ]
    assert any(inside), result


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_either_maps_or_raises_bad_path(text: str) -> None:
    for call in (lambda: wsl(text), lambda: to_windows(text, distro=DISTRO)):
        try:
            call()
        except BadPath:
            pass


def _folded(path: str) -> str:
    return "".join(ch.upper() if len(ch.upper()) == 1 else ch for ch in path)
