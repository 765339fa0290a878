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
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, SequenceNode


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
    """Parse one YAML document; raises ``yaml.YAMLError`` on bad syntax."""
    return yaml.load(text, Loader=PositionLoader)  # noqa: S506 - a SafeLoader subclass


def positioned(value: Any, line: int = 0) -> Any:
    """Plain data (dicts, lists, scalars) -> the same with :class:`PosDict`/:class:`PosList`,
    every line set to ``line``: validates data that never was YAML text (JSON, a database)."""
    if isinstance(value, dict):
        mapping = PosDict(line)
        for key, item in value.items():
            mapping[key] = positioned(item, line)
            mapping.lines[key] = line
        return mapping
    if isinstance(value, list | tuple):
        sequence = PosList(line)
        for item in value:
            sequence.append(positioned(item, line))
            sequence.lines.append(line)
        return sequence
    return value
