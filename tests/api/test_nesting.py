"""flux_api.nesting: anything the API server admits decodes, without recursion, and deep parts become stubs."""

from __future__ import annotations

import json
import random
import sys
import threading

import pytest
from flux_api import nesting

pytestmark = pytest.mark.unit

DEPTH = 9_990  # as deep as an Execution's spec.input can be under the API server's 10,000


def nested_text(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def nested_value(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def test_the_stdlib_decoder_dies_where_the_api_server_does_not() -> None:
    """Why the module exists: the API server accepts this, json.loads does not."""
    with pytest.raises(RecursionError):
        json.loads(nested_text(DEPTH))


def test_an_object_as_deep_as_the_api_server_admits_decodes_with_its_deep_part_as_a_stub() -> None:
    text = '{"spec": {"workflow": "a:b", "input": {"deep": %s}}, "status": {"phase": "Pending"}}' % nested_text(DEPTH)
    obj = nesting.loads(text.encode())
    assert obj["spec"]["workflow"] == "a:b" and obj["status"] == {"phase": "Pending"}
    node, levels = obj["spec"]["input"]["deep"], 4  # the root is level 1
    while nesting.elided(node) is None:
        node, levels = node[0], levels + 1
    assert levels == nesting.DECODE_DEPTH + 1, "cut just below the decode depth"
    stub = nesting.elided(node)
    assert stub["reason"] == "depth" and stub["levels"] == 3 + DEPTH - nesting.DECODE_DEPTH
    assert stub["bytes"] == 2 * stub["levels"] + 1
    assert nesting.depth(obj) == 3 + DEPTH, "a stub counts as the depth it stands for"


def test_deep_objects_and_mixed_nesting_with_brackets_inside_strings() -> None:
    deep_dict = '{"a":' * 5000 + '"]]]}}}\\"[{"' + "}" * 5000
    text = '{"x": ["[", "{\\"", %s, "\\\\"], "y": %s}' % (deep_dict, nested_text(3000, '"}]"'))
    obj = nesting.loads(text)
    assert obj["x"][0] == "[" and obj["x"][1] == '{"' and obj["x"][3] == "\\"
    assert nesting.depth(obj["x"][2]) == 5000 and nesting.depth(obj["y"]) == 3000


def test_everything_shallow_decodes_exactly_as_json_does() -> None:
    value = {"unicode": "grüße ☃ \u0000 😀", "numbers": [0, -1, 1.5e300, 12345678901234567890],
             "literals": [True, False, None], "escapes": "a\"b\\c\n\t/", "empty": [{}, [], ""],
             "nested": nested_value(nesting.DECODE_DEPTH - 2, {"leaf": "[]{}"})}
    for text in (json.dumps(value), json.dumps(value, indent=2), json.dumps(value, ensure_ascii=False)):
        assert nesting.loads(text) == json.loads(text)
        assert nesting.loads(text.encode()) == json.loads(text)


def test_text_that_is_not_json_is_a_value_error_at_any_depth() -> None:
    for text in ("", "{", nested_text(DEPTH)[:-1], nested_text(DEPTH) + "]", '{"a": [}' + "]" * 200,
                 "[" * 200 + "]" * 199 + "x]"):
        with pytest.raises(ValueError):
            nesting.loads(text)
    # What lies inside a part nested too deep is never decoded, so never checked (the API server sent it).
    assert nesting.elided(nesting.loads("[" * 200 + "x" + "]" * 200, max_depth=2)[0][0]) is not None


def test_nothing_recurses_even_on_a_thread_with_a_small_stack() -> None:
    """Decoding, measuring and checking run on a 256 KiB stack, where any recursion per level would crash."""
    found: dict = {}

    def work() -> None:
        obj = nesting.loads('{"v": %s}' % nested_text(DEPTH))
        found["depth"] = nesting.depth(obj)
        found["too_deep"] = nesting.too_deep(nested_value(200_000))

    previous = threading.stack_size(256 * 1024)
    try:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(previous)
    assert found == {"depth": DEPTH + 1, "too_deep": True}


def test_depth_and_the_payload_limit() -> None:
    assert [nesting.depth(v) for v in (1, "x", None, [], {}, [[]], {"a": {"b": [1]}})] == [0, 0, 0, 1, 1, 2, 3]
    assert not nesting.too_deep(nested_value(nesting.PAYLOAD_DEPTH))
    assert nesting.too_deep(nested_value(nesting.PAYLOAD_DEPTH + 1))
    assert nesting.depth(nested_value(100_000), limit=10) == 11, "stops counting past the limit"
    problem = nesting.nesting_problem({"a": nested_value(nesting.PAYLOAD_DEPTH)}, "spec.input")
    assert problem == f"spec.input nests deeper than {nesting.PAYLOAD_DEPTH} levels: Flux passes on at most " \
                      f"{nesting.PAYLOAD_DEPTH}"
    assert nesting.nesting_problem({"a": 1}, "spec.input") is None


def test_the_decode_depth_leaves_room_for_every_payload_below_its_place() -> None:
    """A payload sits at most 7 levels down (a list answer: items, item, status, children, entry, result):
    one within the payload limit is never cut by the decoder, so the roles agree on what is too deep."""
    assert nesting.PAYLOAD_DEPTH + 7 < nesting.DECODE_DEPTH
    listing = {"items": [{"status": {"children": [{"result": nested_value(nesting.PAYLOAD_DEPTH)}]}}]}
    assert nesting.loads(json.dumps(listing)) == listing


def test_the_recursion_limit_is_untouched() -> None:
    before = sys.getrecursionlimit()
    nesting.loads(nested_text(DEPTH))
    assert sys.getrecursionlimit() == before


def test_many_brackets_that_nest_shallowly_are_not_scanned(monkeypatch) -> None:
    """An object with hundreds of small dicts (a checkpoint's steps, managed fields) is the common case:
    it goes straight to the C decoder; the token scan is only for what really nests too deep."""
    wide = json.dumps({"steps": [{"name": f"s{i}", "at": {"t": i}} for i in range(500)], "s": "[[[[{{{{" * 100})
    monkeypatch.setattr(nesting, "_elide", lambda *a: (_ for _ in ()).throw(AssertionError("scanned")))
    assert nesting.loads(wide) == json.loads(wide)


@pytest.mark.parametrize("depth, deeper", [(nesting.DECODE_DEPTH, False), (nesting.DECODE_DEPTH + 1, True)])
def test_the_depth_check_counts_levels_exactly_and_ignores_brackets_in_strings(depth, deeper) -> None:
    text = json.dumps({"s": "]]]}}}" * 50, "v": nested_value(depth - 1)})  # the dict is one level
    assert nesting._nests_deeper(text, nesting.DECODE_DEPTH) is deeper


def random_value(rng: random.Random, height: int) -> object:
    """A JSON value at most `height` levels deep: wide and narrow, lists and dicts, brackets in strings."""
    if height == 0 or rng.random() < 0.15:
        return rng.choice([1, "x", "[{", "]}\"", None])
    children = [random_value(rng, height - 1) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
    return children if rng.random() < 0.5 else {f"k{i}": c for i, c in enumerate(children)}


@pytest.mark.parametrize("seed", range(40))
def test_the_depth_check_agrees_with_counting_the_decoded_value(seed) -> None:
    """Peeling then counting runs answers as the slow, exact count does, for limits below, at and above
    the levels peeled first."""
    rng = random.Random(seed)
    value = [random_value(rng, rng.randint(1, 30)) for _ in range(rng.randint(1, 6))]
    text = json.dumps(value)
    for limit in (1, 2, nesting.PEELED_FIRST - 1, nesting.PEELED_FIRST, nesting.PEELED_FIRST + 1, 12, 20, 30):
        assert nesting._nests_deeper(text, limit) is (nesting.depth(value) > limit), (limit, text)


def test_a_wide_body_nested_just_below_the_limit_is_scanned_in_few_passes(monkeypatch) -> None:
    """What a tenant can send on every watch event, 1 MB of brackets nested 100 levels: a fixed number of
    passes over the text, not one per level."""
    body = json.dumps([nested_value(nesting.PAYLOAD_DEPTH - 1) for _ in range(2_500)])
    passes = []
    real = nesting._INNERMOST

    class Counting:
        def sub(self, repl, text):
            passes.append(len(text))
            return real.sub(repl, text)

    monkeypatch.setattr(nesting, "_INNERMOST", Counting())
    assert nesting._nests_deeper(body, nesting.DECODE_DEPTH) is False
    assert len(passes) <= nesting.PEELED_FIRST, len(passes)
