"""The emulator's console: its own messages, the access log and the functions' output, one line at a time."""

from __future__ import annotations

import sys
import threading
from typing import TextIO


class Console:
    def __init__(self, stream: TextIO | None = None, *, debug: bool = False, quiet: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.debug_enabled = debug
        self.quiet = quiet
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text if text.endswith("\n") else text + "\n")
            self.stream.flush()

    def info(self, text: str) -> None:
        self.write(text)

    def debug(self, text: str) -> None:
        if self.debug_enabled:
            self.write(f"[debug] {text}")

    def function(self, name: str, text: str) -> None:
        """A line the function wrote, or a platform line about it (START, END, REPORT)."""
        if not self.quiet:
            self.write("".join(f"[{name}] {line}\n" for line in text.splitlines() or [""]))

    def access(self, line: str) -> None:
        if not self.quiet:
            self.write(line)
