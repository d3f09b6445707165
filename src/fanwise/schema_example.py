"""A value that satisfies a JSON Schema: what the offline model and the simulator answer with.

Deterministic for one seed (choices are a hash of the seed and the value's path), and readable:
strings carry a short phrase about the question. The items of a list differ from each other
(a string item carries its place in the list, ``districts 2: ...``, and a repeated item is
drawn again), so a plan that maps over a structured list gets as many distinct items as it
asked for. ``minItems``/``maxItems``, ``enum``, ``const``, ``minimum``/``maximum`` and
``minLength``/``maxLength`` are honoured; ``uniqueItems`` holds whenever the schema allows it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fanwise.schemas import resolve_ref

_INDEX = re.compile(r"\[(\d+)\]")
_LAST_INDEX = re.compile(r"\[(\d+)\]$")

_EXTRA_DRAWS = 16
"""How many more items a list may draw, beyond the count it wants, to find distinct ones."""


def example(schema: Mapping[str, Any], *, seed: str = "", text: str = "") -> Any:
    """A value that satisfies ``schema``, the same every time for one ``seed``.

    Strings carry ``text`` (a short phrase about the question) so a structured demo still reads
    like an answer.
    """
    return _Example(schema, seed, text or "an answer").value(schema, "", 0)


@dataclass(slots=True)
class _Example:
    root: Mapping[str, Any]
    seed: str
    text: str

    def pick(self, path: str, n: int) -> int:
        digest = hashlib.sha256(f"{self.seed}/{path}".encode()).digest()
        return int.from_bytes(digest[:4], "big") % max(n, 1)

    def turn(self, path: str, n: int) -> int:
        """``pick``, but the items of one list take consecutive choices, so they differ."""
        last = _LAST_INDEX.search(path)
        if last is None:
            return self.pick(path, n)
        return (self.pick(path[: last.start()], n) + int(last[1])) % max(n, 1)

    def value(self, node: Mapping[str, Any], path: str, depth: int) -> Any:
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self.value(resolve_ref(self.root, ref), path, depth + 1)
        if "const" in node:
            return node["const"]
        enum = node.get("enum")
        if isinstance(enum, list) and enum:
            return enum[self.turn(path, len(enum))]
        for union in ("anyOf", "oneOf"):
            variants = [v for v in node.get(union) or [] if isinstance(v, Mapping)]
            real = [v for v in variants if v.get("type") != "null"] or variants
            if real:
                return self.value(real[self.pick(path, len(real))], path, depth + 1)
        all_of = node.get("allOf")
        if isinstance(all_of, list) and all_of:
            merged: dict[str, Any] = {}
            for part in all_of:
                merged.update(part)
            return self.value(merged, path, depth + 1)
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object" or (kind is None and "properties" in node):
            props = node.get("properties") or {}
            return {key: self.value(sub, f"{path}.{key}", depth + 1) for key, sub in props.items()}
        if kind == "array":
            return self.array(node, path, depth)
        if kind in ("integer", "number"):
            low = node.get("minimum", node.get("exclusiveMinimum", 0))
            high = node.get("maximum", node.get("exclusiveMaximum", low + 10))
            if "exclusiveMinimum" in node:
                low += 1
            if "exclusiveMaximum" in node:
                high -= 1
            number = int(low) + self.turn(path, int(high) - int(low) + 1)
            return number if kind == "integer" else float(number)
        if kind == "boolean":
            return self.turn(path, 2) == 1
        if kind == "null":
            return None
        return self.string(node, path)

    def array(self, node: Mapping[str, Any], path: str, depth: int) -> list[Any]:
        """``count`` items, distinct where the item schema allows: an item equal to one already
        drawn is drawn again at the next index. Only a list whose items cannot all differ (two
        booleans, a one-value enum) repeats one, and never under ``uniqueItems``."""
        raw_items = node.get("items")
        items: Mapping[str, Any] = raw_items if isinstance(raw_items, Mapping) else {}
        low = int(node.get("minItems", 1 if depth < 4 else 0))
        high = int(node.get("maxItems", max(low, 3)))
        count = low + self.pick(path + "#n", high - low + 1)
        distinct: dict[str, Any] = {}
        drawn: list[Any] = []
        for index in range(count + _EXTRA_DRAWS):
            if len(distinct) == count:
                break
            item = self.value(items, f"{path}[{index}]", depth + 1)
            drawn.append(item)
            distinct.setdefault(json.dumps(item, sort_keys=True), item)
        chosen = list(distinct.values())
        if not node.get("uniqueItems"):
            chosen += drawn[: count - len(chosen)]  # too few distinct values exist: repeat some
        return chosen

    def string(self, node: Mapping[str, Any], path: str) -> str:
        """``label: text``, where a string inside a list adds its place, ``label 2: text``."""
        label = path.rsplit(".", 1)[-1].split("[", 1)[0] or "answer"
        place = ".".join(str(int(i) + 1) for i in _INDEX.findall(path))
        head = f"{label.replace('_', ' ')} {place}" if place else label.replace("_", " ")
        words = f"{head}: {self.text}"
        low_len = int(node.get("minLength", 0))
        high_len = int(node.get("maxLength", max(len(words), low_len)))
        if place and len(words) > high_len >= len(place):  # keep the place when cut short
            words = words[: high_len - len(place)] + place
        return words.ljust(low_len, ".")[:high_len]


__all__ = ["example"]
