"""Convert pickled feature arrays (``<video>.pkl``, LLMVA-GEBC's release) to ``.npy`` files that load without
running code: ``python -m vlmkit.tools.pkl_to_npy FOLDER [--out OUT]`` (or ``vlmkit convert-features``).

Reading uses a restricted unpickler that only rebuilds numpy arrays, numpy scalars/dtypes and plain containers,
so a crafted file fails with an error naming the global it wanted instead of running it.  ``--trust`` uses the
full unpickler for files you wrote yourself (arrays of other libraries).
"""
from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vlmkit.errors import DataError

# (module, name) pairs a pickled numpy array needs; numpy moved core -> _core in 2.0, files hold either.
_ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
            for n in ("_reconstruct", "scalar")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"), ("collections", "OrderedDict"),
}


class ArrayOnlyUnpickler(pickle.Unpickler):
    """Refuses every global but the few that rebuild numpy arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name} (only numpy arrays are accepted)")
        return super().find_class(module, name)


def read_pickled_array(path: Path, trust: bool = False) -> np.ndarray:
    """The float32 array of a pickled feature file; ``trust`` allows any pickle (it can run code)."""
    try:
        with open(path, "rb") as f:
            value = pickle.load(f) if trust else ArrayOnlyUnpickler(f).load()
        return np.asarray(value, dtype=np.float32)
    except (OSError, ValueError, TypeError, pickle.UnpicklingError, EOFError, AttributeError) as err:
        raise DataError(f"{path}: cannot read a pickled feature array: {err}") from err


def convert_folder(folder: Path, out: Path | None = None, trust: bool = False, overwrite: bool = False) -> list[Path]:
    """Write ``<stem>.npy`` for every ``*.pkl`` in ``folder`` (into ``out``, default the same folder)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of .pkl feature files")
    out = out or folder
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(folder.glob("*.pkl")):
        target = out / f"{source.stem}.npy"
        if target.exists() and not overwrite:
            raise DataError(f"{target} exists; pass --overwrite to replace it")
        np.save(target, read_pickled_array(source, trust), allow_pickle=False)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vlmkit convert-features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="folders of <video>.pkl files")
    parser.add_argument("--out", type=Path, default=None, help="write the .npy files here (one folder only)")
    parser.add_argument("--trust", action="store_true", help="full unpickler: only for files you trust")
    parser.add_argument("--overwrite", action="store_true", help="replace existing .npy files")
    args = parser.parse_args(argv)
    if args.out is not None and len(args.folders) > 1:
        parser.error("--out takes one input folder")
    try:
        for folder in args.folders:
            written = convert_folder(folder, args.out, args.trust, args.overwrite)
            print(f"{folder}: wrote {len(written)} .npy file(s) to {args.out or folder}")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
