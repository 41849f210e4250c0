"""sha256 of checkpoint files, in the `sha256sum` format so `sha256sum -c SHA256SUMS` verifies them too."""
from __future__ import annotations

import hashlib
from pathlib import Path

from vlmkit.errors import DataError

CHECKSUM_FILE = "SHA256SUMS"
_CHUNK = 8 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:  # plain reads: the page cache holds the data, not this process
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(directory: Path, files: list[Path]) -> Path:
    lines = [f"{sha256_of(path)}  {path.relative_to(directory).as_posix()}" for path in sorted(files)]
    out = directory / CHECKSUM_FILE
    out.write_text("\n".join(lines) + "\n")
    return out


def verify_checksums(checksum_file: Path, directory: Path) -> int:
    """Check every file listed in checksum_file under directory; returns the count, raises naming each mismatch."""
    problems, count = [], 0
    for line in checksum_file.read_text().splitlines():
        if not line.strip():
            continue
        expected, _, name = line.partition("  ")
        path = directory / name
        count += 1
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256_of(path) != expected:
            problems.append(f"{name}: sha256 differs from {checksum_file}")
    if problems:
        raise DataError(f"{directory} does not match {checksum_file}:\n" + "\n".join(f"  - {p}" for p in problems))
    return count
