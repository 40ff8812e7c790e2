"""Read YAML into plain data while remembering where every value came from.

PyYAML's safe loader forgets line numbers and silently keeps the last of two
equal keys. This builds the node tree from the parser's event stream instead
(libyaml's when PyYAML has it), without recursion, refusing on the way deep
nesting, too many nodes, tags outside YAML's core types and recursive
aliases, each at its place. It then walks the tree, so every value and key
keeps its mark, duplicate keys are errors, timestamps stay strings, integers
stay within what Stripe takes, and alias expansion (the "billion laughs"
bomb) is bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import yaml

from reconciler.inputs import IntegerTooLarge, bounded_int

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "Located",
    "Mark",
    "YamlProblem",
    "format_path",
    "parse_yaml",
    "printable",
]

MAX_NODES = 200_000
MAX_DEPTH = 64

PathKey = str | int
Path = tuple[PathKey, ...]

_CORE = "tag:yaml.org,2002:"
_TIMESTAMP_TAG = _CORE + "timestamp"
_MERGE_TAG = _CORE + "merge"
_INT_TAG = _CORE + "int"
_SCALAR_TAGS: dict[str, frozenset[str]] = {
    # an explicit core tag on a scalar, and the implicit types its text may have
    _CORE + "str": frozenset(),
    _INT_TAG: frozenset({_INT_TAG}),
    _CORE + "float": frozenset({_INT_TAG, _CORE + "float"}),
    _CORE + "bool": frozenset({_CORE + "bool"}),
    _CORE + "null": frozenset({_CORE + "null"}),
}
_CORE_TYPES = "!!str, !!int, !!float, !!bool, !!null, !!seq, !!map"
_LOADER: Any = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
"""libyaml's parser when PyYAML was built with it: the same events and marks, far faster."""


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


def _mark(node: yaml.Node | yaml.Event) -> Mark:
    start: Any = node.start_mark
    return Mark(start.line + 1, start.column + 1)


def printable(text: str, limit: int | None = None) -> str:
    """``text`` safe to print: invisible characters (controls, bidi overrides) escaped,
    and cut at ``limit`` characters if given."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _tag_name(tag: str) -> str:
    return printable("!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag, 60)


class _Refused(Exception):
    def __init__(self, mark: Mark, path: Path, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.path = path
        self.message = message


@dataclass
class _Open:
    """A collection being composed; ``key`` is a mapping's key still waiting for its value."""

    node: yaml.SequenceNode | yaml.MappingNode
    key: yaml.Node | None = None


class _Composer:
    """Builds the node tree from parser events in a loop: nothing here recurses.

    Bounds are checked on each event, before anything is built on it: the
    node count, the nesting depth, the tag, and aliases (defined before use,
    never to a node that contains them). Merge chains (``<<: *a`` where ``a``
    merges in turn) are bounded by the depth too, since PyYAML flattens them
    recursively.
    """

    def __init__(self) -> None:
        self.stack: list[_Open] = []
        self.open: set[int] = set()
        self.anchors: dict[str, yaml.Node] = {}
        self.merges: dict[int, int] = {}
        self.resolve: Callable[..., str] = yaml.resolver.Resolver().resolve
        self.count = 0
        self.documents = 0
        self.root: yaml.Node | None = None

    def compose(self, text: str) -> yaml.Node | None:
        for event in yaml.parse(text, Loader=_LOADER):
            self._feed(event)
        return self.root

    def _refuse(self, event: yaml.Event, message: str) -> _Refused:
        return _Refused(_mark(event), self._here(), message)

    def _here(self) -> Path:
        """The path of the node the current event starts (only computed for a message)."""
        path: list[PathKey] = []
        last = len(self.stack) - 1
        for depth, entry in enumerate(self.stack):
            node = entry.node
            if isinstance(node, yaml.SequenceNode):
                path.append(len(node.value) - (depth < last))
                continue
            if (entry.key is None) == (depth == last):
                break  # the event is a key, or inside a complex key: the mapping is the place
            key = entry.key if depth == last else node.value[-1][0]
            path.append(str(key.value) if isinstance(key, yaml.ScalarNode) else "?")
        return tuple(path)

    def _feed(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise _Refused(
                    _mark(event), (), "a second YAML document (---) was found; one is expected"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            entry = self.stack.pop()
            self.open.discard(id(entry.node))
            entry.node.end_mark = event.end_mark
            if isinstance(entry.node, yaml.MappingNode):
                self._bound_merges(entry.node)
        elif isinstance(event, yaml.NodeEvent):
            self._node_event(event)

    def _node_event(self, event: yaml.NodeEvent) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise self._refuse(event, f"document has more than {MAX_NODES} YAML nodes; refused")
        if len(self.stack) > MAX_DEPTH:
            raise self._refuse(event, f"document nests deeper than {MAX_DEPTH} levels; refused")
        if isinstance(event, yaml.AliasEvent):
            name = printable(str(event.anchor), 60)
            target = self.anchors.get(str(event.anchor))
            if target is None:
                raise self._refuse(event, f"alias *{name} has no anchor &{name} before it")
            if id(target) in self.open:
                raise self._refuse(event, f"alias *{name} refers to a node that contains it")
            self._attach(target)
            return
        node = self._build(event)
        if event.anchor is not None:
            self.anchors[str(event.anchor)] = node
        self._attach(node)
        if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
            self.stack.append(_Open(node))
            self.open.add(id(node))

    def _build(self, event: yaml.NodeEvent) -> yaml.Node:
        tag = getattr(event, "tag", None)
        explicit = tag is not None and tag != "!"
        if isinstance(event, yaml.ScalarEvent):
            resolved = self.resolve(yaml.ScalarNode, event.value, event.implicit)
            if explicit:
                self._check_scalar_tag(event, str(tag), resolved)
            start: Any = event.start_mark
            end: Any = event.end_mark
            tag = str(tag) if explicit else resolved
            return yaml.ScalarNode(tag, event.value, start, end, style=event.style)
        kind: type[yaml.SequenceNode | yaml.MappingNode]
        kind, what = (
            (yaml.SequenceNode, "a list")
            if isinstance(event, yaml.SequenceStartEvent)
            else (yaml.MappingNode, "a mapping")
        )
        default = self.resolve(kind, None, True)
        if explicit and tag != default:
            raise self._refuse(event, f"{self._tag_refusal(str(tag))} (on {what})")
        flow = getattr(event, "flow_style", None)
        return kind(default, [], cast(Any, event.start_mark), None, flow_style=flow)

    def _check_scalar_tag(self, event: yaml.ScalarEvent, tag: str, resolved: str) -> None:
        if tag not in _SCALAR_TAGS:
            raise self._refuse(event, self._tag_refusal(tag))
        accepted = _SCALAR_TAGS[tag]
        if accepted and resolved not in accepted:
            raise self._refuse(
                event, f"'{printable(event.value, 60)}' is not a valid {_tag_name(tag)}"
            )

    @staticmethod
    def _tag_refusal(tag: str) -> str:
        return (
            f"the tag {_tag_name(tag)} is not allowed: only plain data and YAML's core "
            f"types ({_CORE_TYPES}) are read"
        )

    def _attach(self, node: yaml.Node) -> None:
        if not self.stack:
            self.root = node
            return
        entry = self.stack[-1]
        if isinstance(entry.node, yaml.SequenceNode):
            entry.node.value.append(node)
        elif entry.key is None:
            entry.key = node
        else:
            entry.node.value.append((entry.key, node))
            entry.key = None

    def _bound_merges(self, node: yaml.MappingNode) -> None:
        merged = [value for key, value in node.value if key.tag == _MERGE_TAG]
        if not merged:
            return
        sources: list[yaml.Node] = []
        for value in merged:
            sources += value.value if isinstance(value, yaml.SequenceNode) else [value]
        depth = 1 + max(self.merges.get(id(source), 0) for source in sources)
        if depth > MAX_DEPTH:
            raise _Refused(
                _mark(node), self._here(), f"merge keys (<<) chain deeper than {MAX_DEPTH} levels"
            )
        self.merges[id(node)] = depth


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
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        if node.tag != _INT_TAG:
            return self.constructor.construct_object(node, deep=True)
        try:
            return bounded_int(node.value, lambda _: self.constructor.construct_object(node))
        except IntegerTooLarge as exc:
            raise _Refused(_mark(node), path, str(exc)) from None

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
            key = key_node.value if key_node.tag == _TIMESTAMP_TAG else self._scalar(key_node, path)
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


def _syntax_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    """PyYAML's wording for a syntax error, whichever parser found it."""
    problem = exc.problem or exc.context or "unreadable"
    if problem == "exceeded maximum nesting depth":  # libyaml's own bound, met before ours
        return f"document nests deeper than {MAX_DEPTH} levels; refused"
    mark = exc.problem_mark
    if problem == "found character that cannot start any token" and mark is not None:
        lines = text.split("\n", mark.line + 1)
        line = lines[mark.line] if mark.line < len(lines) else ""
        if mark.column < len(line):
            problem = f"found character {line[mark.column]!r} that cannot start any token"
    message = f"invalid YAML: {printable(problem, 200)}"
    if "'\\t'" in message:
        message += " (tabs cannot indent YAML; use spaces)"
    return message


def parse_yaml(text: str) -> Located:
    """Parse one YAML document; syntax problems land in ``problems``, not exceptions."""
    located = Located(data=None)
    try:
        root = _Composer().compose(text)
    except _Refused as exc:
        located.problems.append(YamlProblem(exc.mark, exc.path, exc.message))
        return located
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        located.problems.append(YamlProblem(where, (), _syntax_message(exc, text)))
        return located
    except yaml.YAMLError as exc:
        located.problems.append(
            YamlProblem(Mark(1, 1), (), f"invalid YAML: {printable(str(exc), 200)}")
        )
        return located
    if root is None:
        return located
    try:
        located.data = _Walker(located).walk(root, (), 0)
    except _TooLarge as exc:
        located.data = None
        located.problems.append(YamlProblem(_mark(root), (), str(exc)))
    except _Refused as exc:
        located.data = None
        located.problems.append(YamlProblem(exc.mark, exc.path, exc.message))
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        located.data = None
        located.problems.append(YamlProblem(where, (), f"invalid YAML: {exc.problem}"))
    return located
