"""With POSED_LOG_FORMAT=json every line on the daemon's stderr is a JSON object (issue 10,
item 16): MediaPipe's native ``W0000 ...`` lines and FFmpeg's ``[mpeg4 @ ...]`` complaints come
from C++ straight to the worker's fd 2, and are wrapped, not passed through raw. The one human
line, "ready, drop videos into ...", goes to stdout, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.daemon_harness import FAST, REPO, SHORT_CLIP, drop, wait_outcome
from tests.helpers import wait_until
from tests.hostile_corpus import drop_named, ffmpeg, scramble


def test_every_stderr_line_of_a_daemon_run_is_json_and_ready_is_said_once_on_stdout(tmp_path):
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    ffmpeg("-i", SHORT_CLIP, "-c:v", "mpeg4", "-q:v", "5", tmp_path / "mp4v.avi")
    damaged = scramble((tmp_path / "mp4v.avi").read_bytes(), 0.3, 0.55)  # FFmpeg complains while decoding
    command = [sys.executable, "-m", "daemon", "run", "--inbox", str(inbox), "--outbox", str(outbox),
               "daemon.name=json", f"daemon.state_dir={tmp_path / 'state'}", *FAST]  # fmt: skip: the default MediaPipe backend
    with open(tmp_path / "stdout", "wb") as out, open(tmp_path / "stderr", "wb") as err:
        daemon = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=err, env={**os.environ, "POSED_LOG_FORMAT": "json"})
    try:
        wait_until(lambda: b"ready" in (tmp_path / "stdout").read_bytes(), 120, lambda: (tmp_path / "stderr").read_text()[-2000:])
        drop(SHORT_CLIP, inbox, "clip.mp4")
        drop_named(damaged, inbox, "damaged.avi")
        assert wait_outcome(outbox, "clip.mp4", timeout=120)[0] == "result"
        assert wait_outcome(outbox, "damaged.avi", timeout=120)[0] == "error"
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=60) == 0

    lines = (tmp_path / "stderr").read_text().splitlines()
    not_json = [line for line in lines if not _json_object(line)]
    assert not_json == [], f"{len(not_json)} of {len(lines)} stderr lines are not JSON, e.g. {not_json[:3]}"
    native = [json.loads(line) for line in lines if json.loads(line).get("event") == "worker.output"]
    assert native, "the worker's native libraries printed nothing: the test did not exercise the filter"
    assert all(event["line"] and event["level"] in ("info", "warning", "error", "critical") for event in native)
    stdout = (tmp_path / "stdout").read_text().splitlines()
    assert stdout == [f"posed: ready, drop videos into {inbox} (outcomes appear in {outbox})"]


def _json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
