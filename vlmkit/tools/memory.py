"""Give freed heap memory back to the operating system.

glibc raises its mmap threshold after large blocks are freed, so later tensor-sized blocks come from the heap and
stay counted in RSS after they are freed; a long streaming job then looks (to an OOM killer) as big as its largest
temporaries added together. malloc_trim(0) returns those free pages. Elsewhere (macOS, musl) this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return getattr(libc, "malloc_trim", None)


def release_freed_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
