"""JSON as deep as the API server admits, decoded without recursion, and bounded before anything recurses.

The API server accepts objects nested up to 10,000 levels. CPython's json decoder recurses once per level
(a RecursionError past about 1,000), and so do json.dumps, repr, pydantic's serializer (about 250 levels)
and rich. So every role decodes what the API server sends through `loads`: a scan of the text, which does
not recurse, replaces each subtree nested deeper than DECODE_DEPTH with a small stub; only then does the C
decoder run, on text it can no longer choke on. Payloads (an execution's input, its checkpoint's values,
spawn inputs, pod templates) nest at most PAYLOAD_DEPTH levels: deeper ones are refused where they are
used (`too_deep`), with a message that says so. Nothing here recurses.
"""

from __future__ import annotations

import json
import re
from typing import Any

API_MAX_DEPTH = 10_000  # the API server refuses JSON nested deeper than this
DECODE_DEPTH = 128  # containers nested deeper than this below a document's root are replaced by a stub
PAYLOAD_DEPTH = 100  # what a payload may nest; above every payload's place in an object + this < DECODE_DEPTH
ELIDED = "flux.dev/elided"  # the one key of a stub: {ELIDED: {"reason": ..., ...}}

# A string (escapes included) or a bracket; numbers, literals, commas and colons need no attention.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = re.compile(r'[^\[\]{}]+')
_INNERMOST = re.compile(r'\[\]|\{\}')  # one pass: the pairs innermost now, not those they uncover
_RUNS = re.compile(r'[\[{]+|[\]}]+')
# Levels peeled before counting: a structure must be deeper than this to leave any run behind, so runs are at
# most 1/(PEELED_FIRST + 1) of the brackets, and every level was not a pass over the whole text (1 s for 1.4 MB).
PEELED_FIRST = 8


def loads(data: bytes | bytearray | str, max_depth: int = DECODE_DEPTH) -> Any:
    """json.loads for anything the API server sends: subtrees nested deeper than `max_depth` come back as
    `deep_stub(...)` (their text is neither decoded nor checked). Raises ValueError for text that is not
    JSON, never RecursionError."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    # Only with that many brackets can anything nest deeper; only then is a scan worth its cost.
    if text.count("{") + text.count("[") > max_depth and _nests_deeper(text, max_depth):
        text = _elide(text, max_depth)
    return json.loads(text)


def _nests_deeper(text: str, max_depth: int) -> bool:
    """Whether any bracket nests more than `max_depth` levels, in time linear in the text: the brackets outside
    strings; their shallowest levels peeled at the C speed of regex (each pass takes away the pairs innermost
    now, one level off the top of the deepest); then what is left counted in runs of brackets, of which
    peeling left few. Text that is not JSON may answer either way; the decoder refuses it after."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    peeled = 0
    while peeled < min(PEELED_FIRST, max_depth):
        fewer = _INNERMOST.sub("", brackets)
        if not fewer or fewer == brackets:
            return False
        brackets, peeled = fewer, peeled + 1
    level = 0
    for run in _RUNS.finditer(brackets):
        if brackets[run.start()] in "[{":
            level += run.end() - run.start()
            if level + peeled > max_depth:
                return True
        else:
            level -= run.end() - run.start()
    return False


def _elide(text: str, max_depth: int) -> str:
    pieces: list[str] = []
    kept_until = level = start = deepest = 0
    for match in _TOKENS.finditer(text):
        char = text[match.start()]
        if char == '"':
            continue
        if char in "[{":
            level += 1
            if level == max_depth + 1:
                start, deepest = match.start(), level
            elif level > deepest:
                deepest = level
        else:
            if level == max_depth + 1:
                pieces += [text[kept_until:start],
                           json.dumps(deep_stub(deepest - max_depth, match.end() - start))]
                kept_until = match.end()
            level -= 1
    if not pieces:
        return text
    pieces.append(text[kept_until:])
    return "".join(pieces)


# --- stubs ----------------------------------------------------------------------------------------

def deep_stub(levels: int, size: int | None = None) -> dict[str, Any]:
    """What stands in for a value `levels` deep (`size` bytes of JSON, if known)."""
    details: dict[str, Any] = {"reason": "depth", "levels": levels}
    if size is not None:
        details["bytes"] = size
    details["message"] = f"a value nested {levels} levels deep: not decoded"
    return {ELIDED: details}


def size_stub(size: int, digest: str) -> dict[str, Any]:
    """What stands in for a value kept on the server only (`size` bytes of JSON); equal values, equal stubs."""
    return {ELIDED: {"reason": "size", "bytes": size, "digest": digest}}


def elided(value: Any) -> dict[str, Any] | None:
    """The stub's details if `value` is one, else None."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(details := value.get(ELIDED), dict):
        return details
    return None


# --- measuring, without recursion ----------------------------------------------------------------

def depth(value: Any, limit: int | None = None) -> int:
    """How deeply `value` nests (a scalar 0, [] 1, [[]] 2); a deep stub counts as the depth it stands for.
    With `limit`, stops counting once past it (the answer is then limit + 1)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, above = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        stub = elided(node)
        here = above + (stub.get("levels", 1) if stub and stub.get("reason") == "depth" else 1)
        if here > deepest:
            deepest = here
            if limit is not None and deepest > limit:
                return limit + 1
        if stub is None:
            stack.extend((child, here) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def too_deep(value: Any, limit: int = PAYLOAD_DEPTH) -> bool:
    return depth(value, limit) > limit


def nesting_problem(value: Any, what: str, above: int = 0) -> str | None:
    """A one-line refusal if `value` nests deeper than Flux passes on, else None. `above`: the levels of
    `value` that hold the payloads (1 for {name: payload}), not counted against the limit."""
    if not too_deep(value, PAYLOAD_DEPTH + above):
        return None
    holds = "holds a value nested" if above else "nests"
    return f"{what} {holds} deeper than {PAYLOAD_DEPTH} levels: Flux passes on at most {PAYLOAD_DEPTH}"
