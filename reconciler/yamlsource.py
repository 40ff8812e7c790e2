"""Read YAML into plain data while remembering where every value came from.

PyYAML's safe loader forgets line numbers and silently keeps the last of two
equal keys. This walks the composed node tree instead, so every value and key
keeps its mark, duplicate keys are errors, timestamps stay strings, and alias
expansion (the "billion laughs" bomb) and nesting depth are bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "MAX_NODES", "Located", "Mark", "YamlProblem", "format_path", "parse_yaml"]

MAX_NODES = 200_000
MAX_DEPTH = 64

PathKey = str | int
Path = tuple[PathKey, ...]

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Mark:
    """A 1-based line and column in the source."""

    line: int
    column: int


@dataclass(frozen=True)
class YamlProblem:
    """A problem found while reading the YAML itself, with its place."""

    mark: Mark
    path: Path
    message: str


@dataclass
class Located:
    """Parsed data plus the marks of every value and every mapping key, by path."""

    data: Any
    value_marks: dict[Path, Mark] = field(default_factory=dict)
    key_marks: dict[Path, Mark] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)

    def mark_of(self, path: Path, *, key: bool = False) -> Mark:
        """The mark of a path's key (if asked and known) or value, else its nearest ancestor's."""
        if key and path in self.key_marks:
            return self.key_marks[path]
        probe = path
        while probe:
            if probe in self.value_marks:
                return self.value_marks[probe]
            probe = probe[:-1]
        return self.value_marks.get((), Mark(1, 1))


def format_path(path: Path) -> str:
    """``("prices", 2, "recurring", "meter")`` -> ``prices[2].recurring.meter``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Walker:
    def __init__(self, located: Located) -> None:
        self.located = located
        self.constructor = yaml.SafeLoader("")
        self.visited = 0

    def walk(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise _TooLarge(
                f"document expands to more than {MAX_NODES} YAML nodes (aliases or size); refused"
            )
        if depth > MAX_DEPTH:
            raise _TooLarge(f"document nests deeper than {MAX_DEPTH} levels; refused")
        self.located.value_marks.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        if node.tag == _TIMESTAMP_TAG:
            return node.value
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        return self.constructor.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        if any(key.tag == _MERGE_TAG for key, _ in node.value):
            self.constructor.flatten_mapping(node)
        result: dict[Any, Any] = {}
        first_seen: dict[Any, Mark] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.located.problems.append(
                    YamlProblem(_mark(key_node), path, "mapping keys must be plain scalars")
                )
                continue
            key = key_node.value if key_node.tag == _TIMESTAMP_TAG else self._scalar(key_node)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            if key in first_seen:
                earlier = first_seen[key]
                self.located.problems.append(
                    YamlProblem(
                        _mark(key_node),
                        child,
                        f"duplicate key '{key}' (first defined at line {earlier.line}); "
                        "YAML would silently keep only the last one",
                    )
                )
                continue
            first_seen[key] = _mark(key_node)
            self.located.key_marks[child] = _mark(key_node)
            result[key] = self.walk(value_node, child, depth + 1)
        return result


class _TooLarge(Exception):
    pass


def parse_yaml(text: str) -> Located:
    """Parse one YAML document; syntax problems land in ``problems``, not exceptions."""
    located = Located(data=None)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        message = f"invalid YAML: {exc.problem or exc.context}"
        if "\t" in text and "'\\t'" in str(exc):
            message += " (tabs cannot indent YAML; use spaces)"
        located.problems.append(YamlProblem(where, (), message))
        return located
    except yaml.YAMLError as exc:
        located.problems.append(YamlProblem(Mark(1, 1), (), f"invalid YAML: {exc}"))
        return located
    if root is None:
        return located
    try:
        located.data = _Walker(located).walk(root, (), 0)
    except _TooLarge as exc:
        located.data = None
        located.problems.append(YamlProblem(_mark(root), (), str(exc)))
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        located.data = None
        located.problems.append(YamlProblem(where, (), f"invalid YAML: {exc.problem}"))
    return located
