"""Compile plain-Python numerical kernels with numba, keeping the Python source as the reference.

Each estimator writes its per-tick kernels as plain Python over NumPy arrays. The same functions,
uncompiled, are the reference path that the tests compare the compiled one against; compiled,
they run with ``nogil`` (so a worker thread does not hold up the event loop) and ``cache=True``
(so a warm cache compiles nothing at start-up).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any, cast

Kernel = Callable[..., Any]


def compile_kernels(entries: Sequence[Kernel], helpers: Sequence[Kernel]) -> tuple[Kernel, ...]:
    """Compiled versions of ``entries``, in order, or the functions themselves without numba.

    ``helpers`` are the functions the entries call by their global names. Helpers, then
    entries, are compiled in order, each re-bound to resolve the names of the functions
    compiled before it to their compiled versions (so a function may call any earlier one).
    """
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a declared dependency
        return tuple(entries)
    jit = cast(Callable[..., Any], numba.njit(cache=True, nogil=True))
    compiled: dict[str, Kernel] = {}
    for fn in (*helpers, *entries):
        namespace = dict(fn.__globals__)
        namespace.update(compiled)
        compiled[fn.__name__] = jit(_rebind(fn, namespace))
    return tuple(compiled[f.__name__] for f in entries)


def _rebind(fn: Kernel, namespace: dict[str, Any]) -> Kernel:
    """A copy of ``fn`` that resolves global names in ``namespace``."""
    clone = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    clone.__qualname__ = fn.__qualname__
    clone.__module__ = fn.__module__
    return clone
