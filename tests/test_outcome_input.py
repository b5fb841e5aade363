"""input.moved_to (issue 10, item 16): a result names where its input is after the move, since
input.path points into the inbox, which the input leaves once its outcome is published."""

from __future__ import annotations

from tests.daemon_harness import SHORT_CLIP, drop, wait_outcome, write_bytes
from tests.helpers import wait_until


def test_results_and_error_reports_name_where_the_input_was_moved(daemons):
    daemon = daemons(overrides=["backend.name=fault"]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "twice.mp4")
    kind, first = wait_outcome(daemon.outbox, "twice.mp4")
    wait_until(lambda: (daemon.inbox / "done" / "twice.mp4").exists(), 30)
    drop(SHORT_CLIP, daemon.inbox, "twice.mp4")  # done/ already holds a twice.mp4
    _, second = wait_outcome(daemon.outbox, "twice.mp4~2")
    write_bytes(daemon.inbox, "notes.mp4", b"not a video\n" * 10)
    _, error = wait_outcome(daemon.outbox, "notes.mp4")

    expected = {
        "first": (first, daemon.inbox / "done" / "twice.mp4"),
        "second": (second, daemon.inbox / "done" / "twice~2.mp4"),
        "error": (error, daemon.inbox / "failed" / "notes.mp4"),
    }
    for which, (document, place) in expected.items():
        assert document["input"]["path"] == str(daemon.inbox / document["input"]["name"]), which  # where it was read
        assert document["input"]["moved_to"] == str(place), which
        wait_until(place.is_file, 30, f"{which}: {place}")
        assert "moved_to_windows_path" in document["input"]
    assert kind == "result" and error["error"]["code"] == "E_NOT_A_VIDEO"
