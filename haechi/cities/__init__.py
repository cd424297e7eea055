"""City packs: a city's boundaries, statistics and places, in a documented folder format.

Seoul is the default pack; any city can write its own (docs/city-packs.md).
"""

from pathlib import Path

BUILTIN = Path(__file__).parent


def builtin_packs() -> list[str]:
    return sorted(p.parent.name for p in BUILTIN.glob("*/pack.toml"))


def resolve(pack: str) -> Path:
    """A built-in pack's name or a folder holding a ``pack.toml``."""
    folder = BUILTIN / pack if (BUILTIN / pack / "pack.toml").exists() else Path(pack)
    if not (folder / "pack.toml").is_file():
        from haechi.core.errors import NotFound

        known = ", ".join(builtin_packs())
        raise NotFound(f"no city pack {pack!r}: give a built-in name ({known}) or a folder with pack.toml")
    return folder
