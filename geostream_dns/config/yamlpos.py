"""YAML loading that remembers where things were written.

PyYAML's safe loader builds plain dicts and lists and forgets the source
positions. The validator needs them to say ``file:line: path: message``, so
this loader builds :class:`PosDict` and :class:`PosList` instead: ordinary
``dict``/``list`` subclasses that also carry the 1-based line of the node and
of every mapping key and sequence item. Scalars carry no line; a scalar's line
is the line of the key or item that holds it.

A key given twice in one mapping keeps its first value and is recorded in
``PosDict.duplicates`` (key, line) rather than raised, so the validator can
report it together with every other problem in the file.

Hostile YAML is refused before anything is built from it (`guard`): a text
larger than `MAX_BYTES`, nesting deeper than `MAX_DEPTH`, an alias that
refers to itself, or aliases that would expand the document past twice its
written size plus `ALIAS_ALLOWANCE` nodes (the "billion laughs" bomb: a few
lines that expand to billions of items). The node graph is walked without
recursion, each node once, so the check costs as much as the file's size.
`YamlLimitError` is a ``yaml.YAMLError`` with the line of the offending node,
so every caller that reports YAML syntax errors reports these the same way.
The same limits hold for data that never was YAML (`check_depth`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_BYTES = 32 * 1024 * 1024  # a zone file of some 300,000 records
MAX_DEPTH = 64  # a zone file nests about 8 levels deep
ALIAS_ALLOWANCE = 10_000  # nodes aliases may add beyond twice the written size


class YamlLimitError(yaml.YAMLError):
    """YAML refused for its size, depth or alias expansion; `problem_mark` says where."""

    def __init__(self, problem: str, line: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.context: str | None = None
        self.problem_mark = Mark("<yaml>", 0, max(line - 1, 0), 0, None, 0)

    def __str__(self) -> str:
        return f"line {self.problem_mark.line + 1}: {self.problem}"


class PosDict(dict[Any, Any]):
    """A mapping with ``line`` (of the mapping), ``lines[key]`` and ``duplicates``."""

    line: int
    lines: dict[Any, int]
    duplicates: list[tuple[Any, int]]

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.lines = {}
        self.duplicates = []

    def line_of(self, key: Any) -> int:
        """The line of ``key`` if present, else the line of the mapping."""
        return self.lines.get(key, self.line)


class PosList(list[Any]):
    """A sequence with ``line`` (of the sequence) and ``lines[i]`` per item."""

    line: int
    lines: list[int]

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.lines = []


# libyaml's C parser keeps node marks (lines) and is ~10x faster than the pure
# Python one; the constructors below stay in Python either way.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PositionLoader(_BaseLoader):  # type: ignore[misc]
    """A ``SafeLoader`` whose mappings and sequences are :class:`PosDict`/:class:`PosList`."""

    def construct_pos_mapping(self, node: MappingNode) -> Any:
        data = PosDict(node.start_mark.line + 1)
        yield data
        self.flatten_mapping(node)  # resolves `<<` merge keys like SafeLoader does
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found an unhashable key",
                    key_node.start_mark,
                )
            value = self.construct_object(value_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in data:
                data.duplicates.append((key, line))
                continue
            data[key] = value
            data.lines[key] = line

    def construct_pos_sequence(self, node: SequenceNode) -> Any:
        data = PosList(node.start_mark.line + 1)
        yield data
        for item_node in node.value:
            data.append(self.construct_object(item_node, deep=True))
            data.lines.append(item_node.start_mark.line + 1)


PositionLoader.add_constructor("tag:yaml.org,2002:map", PositionLoader.construct_pos_mapping)
PositionLoader.add_constructor("tag:yaml.org,2002:seq", PositionLoader.construct_pos_sequence)


def load(text: str) -> Any:
    """Parse one YAML document; raises ``yaml.YAMLError`` on bad syntax and
    `YamlLimitError` on a text too large, too deep or an alias bomb."""
    if len(text) > MAX_BYTES:
        raise YamlLimitError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB", 1)
    loader = PositionLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        guard(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def guard(root: Node) -> None:
    """Refuse a node graph too deep or whose aliases expand it too far (no recursion)."""
    # Post-order over the graph: each node's expanded size and height, once.
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    written = 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            height[key] = 1 + max((height[id(c)] for c in children), default=0)
            continue
        if key in size:
            continue  # an alias to a node already measured
        if key in on_path:
            raise YamlLimitError("an alias refers to the node that contains it", _line(node))
        written += 1
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise YamlLimitError("an alias refers to the node that contains it",
                                     _line(child))
            stack.append((child, False))
    budget = 2 * written + ALIAS_ALLOWANCE
    if size[id(root)] > budget:
        node = root  # the innermost node still over the budget: where the bomb is
        while True:
            heavier = [c for c in _children(node) if size[id(c)] > budget]
            if not heavier:
                break
            node = heavier[0]
        raise YamlLimitError(
            f"aliases expand the document to {size[id(root)]:,} nodes, more than "
            f"twice the {written:,} written (an alias bomb?)", _line(node))
    if height[id(root)] > MAX_DEPTH:
        node, depth = root, 1
        while depth <= MAX_DEPTH:  # down to the first node too deep
            node = max(_children(node), key=lambda c: height[id(c)])
            depth += 1
        raise YamlLimitError(f"nested more than {MAX_DEPTH} levels deep", _line(node))


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _line(node: Node) -> int:
    return node.start_mark.line + 1 if node.start_mark is not None else 1


def check_depth(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when plain data (dicts, lists) nests at most `limit` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def positioned(value: Any, line: int = 0) -> Any:
    """Plain data (dicts, lists, scalars) -> the same with :class:`PosDict`/:class:`PosList`,
    every line set to ``line``: validates data that never was YAML text (JSON, a database).
    Raises `YamlLimitError` for data nested deeper than `MAX_DEPTH`."""
    if not check_depth(value):
        raise YamlLimitError(f"nested more than {MAX_DEPTH} levels deep", line)
    return _positioned(value, line)


def _positioned(value: Any, line: int) -> Any:
    if isinstance(value, dict):
        mapping = PosDict(line)
        for key, item in value.items():
            mapping[key] = _positioned(item, line)
            mapping.lines[key] = line
        return mapping
    if isinstance(value, list | tuple):
        sequence = PosList(line)
        for item in value:
            sequence.append(_positioned(item, line))
            sequence.lines.append(line)
        return sequence
    return value
