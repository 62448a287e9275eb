"""Function and layer code that is not a directory: a .zip (a CodeUri, a CDK asset) or inline code.

A zip is extracted once per content into a directory named after its digest, so an unchanged zip is not
extracted again when the template is re-read and a changed one gets a fresh directory (the function's
environments then restart with it). Inline code (`InlineCode`, `Code.ZipFile`) is written as the handler's
module, as Lambda does. Everything lives under one temporary directory, removed when the emulator stops.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path

from samlocal.intrinsics import TemplateError


class Artifacts:
    """Where extracted and inline code is written (one temporary directory per emulator)."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="samlocal-code-"))
                atexit.register(self.remove)
            return self._root

    def extract(self, archive: Path, what: str) -> Path:
        """The directory holding the zip's content (extracted on first use of this content)."""
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
        target = self.root / f"zip-{digest}"
        if target.is_dir():
            return target
        partial = self.root / f"zip-{digest}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.namelist():  # no member may land outside the directory
                    resolved = (partial / member).resolve()
                    if not resolved.is_relative_to(partial.resolve()):
                        raise TemplateError(f"{what}: {archive.name} has a member outside its root: {member}")
                bundle.extractall(partial)
        except zipfile.BadZipFile as error:
            raise TemplateError(f"{what}: {archive} is not a zip file: {error}") from error
        partial.rename(target)
        return target

    def inline(self, code: str, handler: str, what: str) -> Path:
        """A directory with the inline code as the handler's module (`index.handler` -> index.py)."""
        module = handler.rsplit(".", 1)[0]
        digest = hashlib.sha256(f"{module}\0{code}".encode()).hexdigest()[:16]
        target = self.root / f"inline-{digest}"
        if not target.is_dir():
            partial = self.root / f"inline-{digest}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            path = partial / (module.replace(".", "/") + ".py")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code, encoding="utf-8")
            partial.rename(target)
        return target

    def remove(self) -> None:
        with self._lock:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None


ARTIFACTS = Artifacts()
