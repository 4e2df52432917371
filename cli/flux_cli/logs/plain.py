"""A runner's JSON log lines (FLUX_LOG_FORMAT=json, flux_api.logfields) shown in the plain text form;
every other line passes exactly as written."""

from __future__ import annotations

from collections.abc import Callable

from flux_api.logfields import plain


class PlainLines:
    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write
        self.partial = b""

    def __call__(self, chunk: bytes) -> None:
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        if lines:
            self.write(b"".join(self._shown(line) + b"\n" for line in lines))

    def close(self) -> None:
        if self.partial:
            self.write(self._shown(self.partial))
            self.partial = b""
        if callable(close := getattr(self.write, "close", None)):
            close()

    @staticmethod
    def _shown(line: bytes) -> bytes:
        if not line.startswith(b"{"):
            return line
        try:
            text = plain(line.decode("utf-8"))
        except UnicodeDecodeError:
            return line
        return line if text is None else text.encode("utf-8")
