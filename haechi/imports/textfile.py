"""Which text encoding a public data file is in: UTF-8 (with or without BOM) or CP949, else refused.

Korean public portals publish CSV in CP949 (기상자료개방포털, 에어코리아 downloads) or UTF-8 with a
BOM (data.go.kr's newer files). A file is tried as UTF-8 first, since CP949 text is almost never
valid UTF-8 while the reverse is not true; anything that is neither is refused, naming the byte.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from haechi.core.errors import InvalidInput

UTF8, CP949 = "utf-8", "cp949"
_CHUNK = 1 << 20


def detect(path: Path) -> tuple[str, int]:
    """(encoding, bytes to skip for a BOM) of the whole file, read in 1 MiB chunks."""
    with open(path, "rb") as f:
        head = f.read(3)
        skip = 3 if head == codecs.BOM_UTF8 else 0
        f.seek(skip)
        if _decodes(f, UTF8):
            return UTF8, skip
        if skip:
            raise InvalidInput(f"{path.name}: starts with a UTF-8 BOM but is not valid UTF-8", field="file")
        f.seek(0)
        if _decodes(f, CP949):
            return CP949, 0
    raise InvalidInput(
        f"{path.name}: neither UTF-8 nor CP949 text; save it as UTF-8 or CP949 (EUC-KR) and retry",
        field="file")


def _decodes(f, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        while chunk := f.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def read_text(path: Path) -> tuple[str, str]:
    """(text, encoding) of a small file (registers, JSON): decoded whole after detection."""
    encoding, skip = detect(path)
    return path.read_bytes()[skip:].decode(encoding), encoding
