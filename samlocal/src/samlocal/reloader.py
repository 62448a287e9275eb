"""Code changes picked up without a restart: a cheap poll of file modification times.

Every `interval` seconds the code directory and layer directories of each function are walked (bytecode
caches skipped); when the set of files or a modification time changes, the function's environments are
retired (idle ones now, busy ones when their invocation ends) and the next request starts a fresh one.
A change to the template itself needs a restart (routes and settings are read once); it is reported.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

_SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules"})


def tree_signature(roots: Iterable[Path]) -> str:
    """A digest of every file's path, size and modification time under the roots."""
    digest = hashlib.blake2b(digest_size=16)
    for root in roots:
        for directory, subdirectories, files in os.walk(root, followlinks=False):
            subdirectories[:] = sorted(name for name in subdirectories if name not in _SKIPPED_DIRS)
            for name in sorted(files):
                if name.endswith((".pyc", ".partial")):
                    continue
                path = Path(directory, name)
                try:
                    status = path.stat()
                except OSError:
                    continue
                digest.update(f"{path}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class Watched:
    def __init__(self, name: str, roots: list[Path], on_change: Callable[[], None]) -> None:
        self.name = name
        self.roots = roots
        self.on_change = on_change
        self.signature = tree_signature(roots)


class Reloader:
    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.watched: list[Watched] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reloader", daemon=True)

    def watch(self, name: str, roots: list[Path], on_change: Callable[[], None]) -> None:
        self.watched.append(Watched(name, roots, on_change))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> None:
        for watched in self.watched:
            signature = tree_signature(watched.roots)
            if signature != watched.signature:
                watched.signature = signature
                watched.on_change()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()
