"""Write an export folder atomically: everything goes into a hidden folder next to the target, which is renamed
into place only when complete, so an interrupted export leaves no half-written DIR (and an old DIR intact until
the new one is whole)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vlmkit.errors import ConfigError


def check_target(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` unless ``overwrite`` (a file there is always refused)."""
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} is a file; give a folder to export into")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        shown = sorted(p.name for p in out.iterdir())
        raise ConfigError("--out", f"{out} is not empty ({', '.join(shown[:5])}{' ...' if len(shown) > 5 else ''}); "
                                   f"pass --overwrite to replace it, or choose an empty or new folder")


@contextlib.contextmanager
def staged_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """A fresh folder to write the export into; on success it replaces ``out``, on error it is removed."""
    out = Path(out)
    check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        yield stage
        os.chmod(stage, 0o755)  # mkdtemp makes it owner-only
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)  # out's own name inside old: one rename, then the new one goes in
            os.replace(stage, out)
            shutil.rmtree(old)
        else:
            os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
