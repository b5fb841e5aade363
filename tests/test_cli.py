"""The command line as a person meets it: usage errors and typos are reported plainly, at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.daemon_harness import REPO


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
