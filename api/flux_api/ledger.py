"""Which steps a workflow has finished, kept compact so the checkpoint stays small.

Names that end in a number and follow one another ("step-1", "step-2", ...) fold into one run
(`prefix`, `first`, `last`); any other name is kept as it is. A workflow of 100,000 numbered steps
costs one run, so writing the checkpoint after each step costs the same at step 100,000 as at step 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from flux_api.types import StepLedger, StepRun

_NUMBERED = re.compile(r"^(.*?)(0|[1-9][0-9]*)$")


class Ledger:
    def __init__(self, stored: StepLedger | None = None, legacy_names: Iterable[str] = ()) -> None:
        self.runs: list[StepRun] = [r.model_copy() for r in stored.runs] if stored else []
        self.names: list[str] = list(stored.names) if stored else []
        self._done: set[str] = set(self)
        for name in legacy_names:  # checkpoints written before the ledger listed every step
            self.add(name)

    def __contains__(self, name: str) -> bool:
        return name in self._done

    def __len__(self) -> int:
        return len(self._done)

    def __iter__(self) -> Iterator[str]:
        for run in self.runs:
            for n in range(run.first, run.last + 1):
                yield f"{run.prefix}{n}"
        yield from self.names

    def add(self, name: str) -> None:
        if name in self._done:
            return
        self._done.add(name)
        match = _NUMBERED.match(name)
        if match:
            prefix, number = match.group(1), int(match.group(2))
            last = self.runs[-1] if self.runs else None
            if last is not None and last.prefix == prefix and last.last + 1 == number:
                last.last = number
                return
            self.runs.append(StepRun(prefix=prefix, first=number, last=number))
            return
        self.names.append(name)

    def discard_last(self, name: str) -> None:
        """Undoes the latest add of `name` (its checkpoint was refused)."""
        if name not in self._done:
            return
        self._done.discard(name)
        if self.names and self.names[-1] == name:
            self.names.pop()
            return
        run = self.runs[-1]
        if run.first == run.last:
            self.runs.pop()
        else:
            run.last -= 1

    def stored(self) -> StepLedger:
        return StepLedger(runs=[r.model_copy() for r in self.runs], names=list(self.names))
