"""The CI-sized soak (issue 5): ``scripts/soak.py --videos 24``, with its two producers, two
daemons, worker SIGKILLs and a ``kill -9`` of a daemon, must account for every input exactly once.

The full soak (300 videos) is run by hand: ``.venv/bin/python scripts/soak.py --videos 300``.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.daemon_harness import REPO

VIDEOS = 24


def test_the_ci_sized_soak_accounts_for_every_input_exactly_once(tmp_path):
    tally_file = tmp_path / "tally.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "soak.py"), "--videos", str(VIDEOS), "--seed", "2405",
         "--workdir", str(tmp_path / "soak"), "--json", str(tally_file), "--timeout", "600"],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,  # hang guards, not budgets
    )  # fmt: skip
    print(done.stdout[-6000:])
    assert tally_file.exists(), done.stderr[-4000:]
    tally = json.loads(tally_file.read_text())
    assert done.returncode == 0 and tally["ok"], json.dumps(tally["problems"], ensure_ascii=False)
    assert tally["inputs"] == tally["outcomes"] == VIDEOS
    assert tally["duplicates"] == tally["losses"] == tally["partial_reads"] == tally["leftover_locks"] == tally["orphan_companions"] == 0
    assert tally["results"] + tally["errors"] == VIDEOS and tally["left_in_inbox"] == 0
    assert tally["daemon_restarts"] == 1 and tally["worker_sigkills_injected"] >= 1
    assert tally["consumer_reads"] > 0
    assert all(rss < tally["rss_bound_mb"] for rss in tally["max_rss_mb_per_daemon"].values())
