"""Code changes picked up without a restart: a cheap poll of file modification times.

Every `interval` seconds the code directory and layer directories of each function are walked (bytecode
caches skipped); when the set of files or a modification time changes, the function's environments are
retired (idle ones now, busy ones when their invocation ends) and the next request starts a fresh one.
The template and every file it was read from (nested templates, zips, OpenAPI files) are watched the same
way: a change re-reads the stack (cli.LocalApi applies it). A callback may replace or remove watches.
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
        if not root.is_dir():  # a file (a template, a zip): os.walk would not see it
            try:
                status = root.stat()
            except OSError:
                digest.update(f"{root}\0missing\n".encode())
                continue
            digest.update(f"{root}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
            continue
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
        self.watched: dict[str, Watched] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reloader", daemon=True)

    def watch(self, name: str, roots: list[Path], on_change: Callable[[], None]) -> None:
        """Watches the roots under this name (replacing what the name watched before)."""
        watched = Watched(name, roots, on_change)
        with self._lock:
            self.watched[name] = watched

    def unwatch(self, name: str) -> None:
        with self._lock:
            self.watched.pop(name, None)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> None:
        with self._lock:
            watching = list(self.watched.values())
        for watched in watching:
            if self.watched.get(watched.name) is not watched:
                continue  # replaced or removed by an earlier callback of this round
            signature = tree_signature(watched.roots)
            if signature != watched.signature:
                watched.signature = signature
                watched.on_change()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()
