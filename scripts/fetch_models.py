"""Download every model file of the phalp backend into the configured cache, atomically.

Run through scripts/fetch-models.sh. Where files come from, where they go and their checksums
are in configs/models.yaml (URLs are configuration: upstream links have moved before). Each file
is written to a temporary name beside its destination, checked against the size and sha256
pinned in the model list (when pinned), and only then renamed into place, so an interrupted or
corrupt download never looks like a finished one. The size and sha256 of every file are printed
so they can be pinned. The SMPL model cannot be downloaded (licence): ``--smpl PATH`` converts a
file you downloaded yourself into plain numpy arrays where posed reads it (so chumpy is never
needed; see ``smpl_file.py``).

Exit status: 0 when every file the configured detector needs is in place, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing posed

from daemon.processing.backends.phalp.manifest import Archive, Manifest, ModelFile, load_manifest  # noqa: E402
from daemon.processing.backends.phalp.smpl_file import SmplFileError, convert_smpl  # noqa: E402
from daemon.config import load_config  # noqa: E402

CHUNK = 1 << 20
TIMEOUT_S = 60
USER_AGENT = "posed-fetch-models"
PICKLE_FIRST_BYTES = (b"\x80", b"(", b"}", b"]")  # protocol 2+ starts with 0x80; 0/1 with an opcode


class FetchError(Exception):
    """A file could not be fetched or did not match its pinned size/checksum."""


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    cfg = load_config(args.config, args.overrides).backend.phalp
    manifest = load_manifest(cfg)
    detectors = ("maskrcnn", "vitdet") if args.detector == "all" else (args.detector or cfg.detector,)
    if args.smpl:
        install_smpl(Path(args.smpl), _smpl_entry(manifest))
    failures = fetch_all(manifest, detectors, force=args.force, keep_archives=args.keep_archives, dry_run=args.dry_run)
    missing = [f for d in detectors for f in manifest.required(d) if not f.path.is_file()]
    for model_file in {f.key: f for f in missing}.values():
        _say(f"still missing: {model_file.path}\n  {model_file.how_to_get()}")
    return 1 if failures or missing else 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fetch-models.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="posed config file (as for `posed run --config`)")
    parser.add_argument("--detector", choices=("maskrcnn", "vitdet", "all"), help="default: backend.phalp.detector")
    parser.add_argument("--smpl", metavar="PATH", help="convert this SMPL neutral model (.pkl) into plain numpy at backend.phalp.smpl_path")
    parser.add_argument("--force", action="store_true", help="download again even if a file is present")
    parser.add_argument("--keep-archives", action="store_true", help="keep hmr2_data.tar.gz after extracting it")
    parser.add_argument("--dry-run", action="store_true", help="only say what would be downloaded")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. backend.phalp.cache_dir=/data/posed")
    return parser.parse_args(argv)


def fetch_all(manifest: Manifest, detectors: tuple[str, ...], *, force: bool, keep_archives: bool, dry_run: bool) -> list[str]:
    """Fetch every downloadable file the detectors need; return what failed."""
    wanted = {f.key: f for d in detectors for f in manifest.required(d) if f.urls or f.archive}
    todo = [f for f in wanted.values() if force or not _in_place(f)]
    for model_file in wanted.values():
        if model_file not in todo:
            _say(f"present: {model_file.path}")
    failures = []
    for model_file in (f for f in todo if f.urls):
        failures += _attempt(model_file.key, dry_run, lambda f=model_file: fetch_file(f))
    for key in sorted({f.archive for f in todo if f.archive}):
        archive, members = manifest.archives[key], [f for f in todo if f.archive == key]
        failures += _attempt(key, dry_run, lambda a=archive, m=members: fetch_archive(a, m, keep=keep_archives))
    return failures


def _attempt(name: str, dry_run: bool, action: Callable[[], None]) -> list[str]:
    if dry_run:
        _say(f"would fetch: {name}")
        return []
    try:
        action()
    except FetchError as exc:
        _say(f"FAILED {name}: {exc}")
        return [name]
    return []


def _in_place(model_file: ModelFile) -> bool:
    if not model_file.path.is_file():
        return False
    return model_file.bytes is None or model_file.path.stat().st_size == model_file.bytes


def fetch_file(model_file: ModelFile) -> None:
    download_first(model_file.urls, model_file.path, model_file.bytes, model_file.sha256)


def download_first(urls: tuple[str, ...], dest: Path, expected_bytes: int | None, expected_sha256: str | None) -> None:
    """Try each URL in order until one gives the expected file at ``dest``."""
    errors = []
    for url in urls:
        try:
            download(url, dest, expected_bytes, expected_sha256)
            return
        except (OSError, FetchError) as exc:  # URLError is an OSError
            errors.append(f"{url}: {exc}")
    raise FetchError("; ".join(errors))


def download(url: str, dest: Path, expected_bytes: int | None, expected_sha256: str | None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    _say(f"downloading {url}\n         -> {dest}")
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - URLs come from the model list
        _write_verified(lambda: response.read(CHUNK), dest, expected_bytes, expected_sha256)


def _write_verified(read: Callable[[], bytes], dest: Path, expected_bytes: int | None, expected_sha256: str | None) -> None:
    """Stream into a temp file beside ``dest``; rename only if size and checksum match."""
    handle, temp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    temp = Path(temp_name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(handle, "wb") as out:
            while block := read():
                out.write(block)
                digest.update(block)
                size += len(block)
            out.flush()
            os.fsync(out.fileno())
        _verify(dest, size, digest.hexdigest(), expected_bytes, expected_sha256)
        os.replace(temp, dest)
    finally:
        temp.unlink(missing_ok=True)
    _say(f"ok {dest}\n         bytes: {size}\n         sha256: \"{digest.hexdigest()}\"")


def _verify(dest: Path, size: int, sha256: str, expected_bytes: int | None, expected_sha256: str | None) -> None:
    if expected_bytes is not None and size != expected_bytes:
        raise FetchError(f"{dest.name}: got {size} bytes, the model list expects {expected_bytes}")
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise FetchError(f"{dest.name}: sha256 {sha256}, the model list expects {expected_sha256}")


def fetch_archive(archive: Archive, members: list[ModelFile], *, keep: bool) -> None:
    """Download the archive (atomically, verified), then extract only ``members``, each atomically."""
    archive_path = archive.root / f"{archive.key}.tar.gz"
    if not (archive_path.is_file() and (archive.bytes is None or archive_path.stat().st_size == archive.bytes)):
        download_first(archive.urls, archive_path, archive.bytes, archive.sha256)
    extract_members(archive_path, archive.root, members)
    if not keep:
        archive_path.unlink()


def extract_members(archive_path: Path, root: Path, members: list[ModelFile]) -> None:
    wanted = {PurePosixPath(f.path.relative_to(root)).as_posix(): f for f in members}
    found = set()
    try:
        with tarfile.open(archive_path, "r:*") as tar:
            for entry in tar:
                name = _safe_member_name(entry.name)
                if name not in wanted or not entry.isfile():
                    continue
                model_file = wanted[name]
                model_file.path.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(entry)
                _write_verified(lambda: source.read(CHUNK), model_file.path, model_file.bytes, model_file.sha256)
                found.add(name)
    except (tarfile.TarError, OSError) as exc:
        raise FetchError(f"{archive_path}: cannot read the archive ({exc}); delete it and run again") from exc
    absent = sorted(set(wanted) - found)
    if absent:
        raise FetchError(f"{archive_path} does not contain {', '.join(absent)}")


def _safe_member_name(name: str) -> str:
    """Normalise ``./a/b``; names that are absolute or climb out (``..``) never match anything."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        return ""
    return path.as_posix().removeprefix("./")


def _smpl_entry(manifest: Manifest) -> ModelFile:
    return next(f for f in manifest.files if f.instructions)


def install_smpl(source: Path, target: ModelFile) -> None:
    """Convert a user-supplied SMPL file into plain numpy where posed reads it (no chumpy needed).

    The original holds chumpy objects; ``smpl_file`` reads it with a restricted unpickler and
    writes arrays only, atomically. The converted file stays under the SMPL licence."""
    if not source.is_file():
        raise SystemExit(f"--smpl {source}: no such file")
    with source.open("rb") as handle:
        if not handle.read(1).startswith(PICKLE_FIRST_BYTES):
            raise SystemExit(f"--smpl {source}: not a pickle; expected basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")
    try:
        model = convert_smpl(source, target.path)
    except SmplFileError as exc:
        raise SystemExit(f"--smpl {exc}") from None
    _say(f"converted {source}\n         -> {target.path} (plain numpy: {len(model['v_template'])} vertices, {len(model['f'])} faces)")


def _say(message: str) -> None:
    print(f"fetch-models: {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
