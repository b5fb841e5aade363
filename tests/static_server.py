"""A localhost HTTP server for browser tests: the viewer, three.js from node_modules, test files.

Chromium in the tests has no internet; everything the page loads comes from here, under three
prefixes: /examples/ (the repository's examples), /vendor/three/ (tests/browser/node_modules/three,
where viewer.html's import map points) and /files/ (a test's own folder).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.daemon_harness import REPO

THREE = REPO / "tests" / "browser" / "node_modules" / "three"


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".glb": "model/gltf-binary", ".js": "text/javascript", ".mjs": "text/javascript"}

    def __init__(self, *args, roots: dict[str, Path], **kwargs) -> None:
        self._roots = roots
        super().__init__(*args, directory=str(REPO / "examples"), **kwargs)

    def translate_path(self, path: str) -> str:
        """Map a URL prefix to its folder; anything else (or any escape with ..) is a 404 path."""
        clean = unquote(urlsplit(path).path)
        for prefix, root in self._roots.items():
            if clean.startswith(prefix):
                target = (root / clean[len(prefix) :]).resolve()
                if target.is_relative_to(root.resolve()):
                    return str(target)
        return str(REPO / "examples" / ".missing")

    def log_message(self, format: str, *args) -> None:  # keep pytest output clean
        pass


@contextmanager
def serve(files: Path) -> Iterator[str]:
    """Serve on a free localhost port; yields the base URL (http://127.0.0.1:PORT)."""
    roots = {"/examples/": REPO / "examples", "/vendor/three/": THREE, "/files/": files}
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, roots=roots))
    thread = threading.Thread(target=server.serve_forever, name="static-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
