"""The command line as a person meets it: usage errors and typos are reported plainly, at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.daemon_harness import REPO, SHORT_CLIP


def posed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["process", "bench"])
def test_a_missing_video_is_reported_as_not_found_before_any_model_loads(command, tmp_path):
    missing = tmp_path / "no such clip.mp4"
    done = posed(command, str(missing), "backend.name=fault")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"posed {command}: {missing}: not found"
    assert "loading" not in done.stderr and "E_INPUT_VANISHED" not in done.stderr, done.stderr


@pytest.mark.parametrize("command", ["process", "bench"])
def test_a_command_without_its_video_gets_a_usage_error_naming_only_the_video(command):
    done = posed(command)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"posed {command}: error: the following arguments are required: video"


def test_overrides_after_an_option_are_taken_not_refused(tmp_path):
    """`posed process clip.mp4 --out r.json output.preview=true` (issue 22): the override counts."""
    out = tmp_path / "r.json"
    done = posed("process", str(SHORT_CLIP), "--out", str(out), "output.preview=true", "output.motion_glb=true")
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    assert (tmp_path / "r.json.preview.mp4").stat().st_size > 0
    assert (tmp_path / "r.json.motion.glb").stat().st_size > 0


@pytest.mark.parametrize(
    "argv",
    [
        ["process", "CLIP", "--out", "R", "backend.name=no-such-backend"],
        ["process", "--out", "R", "CLIP", "backend.name=no-such-backend"],
        ["process", "CLIP", "backend.name=no-such-backend", "--out", "R"],
        ["bench", "CLIP", "--frames", "3", "backend.name=no-such-backend", "--loop", "1"],
        ["doctor", "backend.name=no-such-backend", "--all"],
    ],
)
def test_an_override_anywhere_on_the_line_reaches_the_config(argv, tmp_path):
    """A bad override is refused by the config wherever it stands: proof it was read, not dropped."""
    argv = [str(SHORT_CLIP) if a == "CLIP" else str(tmp_path / "r.json") if a == "R" else a for a in argv]
    done = posed(*argv)
    assert done.returncode in (1, 3), done.stderr  # bench reports config errors as its own failure (1)
    assert "config key 'backend.name': 'no-such-backend' is not one of" in done.stderr and "unrecognized" not in done.stderr


@pytest.mark.parametrize("command", ["process", "bench"])
def test_an_unknown_option_anywhere_is_still_a_usage_error_of_its_subcommand(command):
    done = posed(command, str(SHORT_CLIP), "a.b=1", "--no-such-option", "c.d=2")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"posed {command}: error: unrecognized arguments: --no-such-option"
