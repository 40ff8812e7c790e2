"""Parameter schemas derived from the stripe SDK's TypedDicts, and coercion.

Each route names the SDK TypedDict that describes its parameters, e.g.
``"PriceCreateParams"`` or ``"billing.MeterCreateParams"`` (relative to
``stripe.params``). :func:`schema_for` turns it into a tree of :class:`Node`
objects once (cached), so the emulator accepts exactly the names the SDK
declares, no hand-written lists: anything else is ``parameter_unknown``, a
required name left out is ``parameter_missing``.

Coercion turns the strings of a form body into the declared types: ``int``,
``bool`` (``true``/``false``), decimals (kept as normalised strings, as
Stripe returns them), lists (from ``a[0]=`` or ``a[]=``), nested objects and
free-form maps (``metadata``). An empty string means "unset" and becomes
``None``. Literal choices the SDK declares are enforced.

This is the one emulator module that imports the stripe SDK, and only its
``params`` TypedDicts.
"""

from __future__ import annotations

import decimal
import functools
import importlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ForwardRef, Literal, NotRequired, Required, Union

from reconciler.emulator.errors import ApiError, missing_param, unknown_param

__all__ = [
    "AnyNode",
    "ListNode",
    "MapNode",
    "Node",
    "ObjectNode",
    "ScalarNode",
    "UnionNode",
    "coerce_params",
    "schema_for",
]

_REQUEST_OPTION_KEYS = frozenset(
    {
        "api_key",
        "stripe_version",
        "stripe_account",
        "stripe_context",
        "max_network_retries",
        "idempotency_key",
        "content_type",
        "headers",
    }
)


def _name(path: str, key: str) -> str:
    return f"{path}[{key}]" if path else key


def _invalid(message: str, param: str) -> ApiError:
    return ApiError(400, message, param=param, store_idempotent=False)


class Node:
    """A parameter type; :meth:`coerce` checks and converts one value."""

    def coerce(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def accepts(self, value: Any) -> bool:
        """Whether this node is the right branch of a union for ``value``."""
        raise NotImplementedError


@dataclass(frozen=True)
class ScalarNode(Node):
    """``str``, ``int``, ``bool``, ``float`` or ``decimal``; optional literal choices."""

    kind: str
    choices: frozenset[str] | None = None

    def accepts(self, value: Any) -> bool:
        if isinstance(value, dict | list):
            return False
        if self.kind == "str":
            return isinstance(value, str) and (self.choices is None or value in self.choices)
        try:
            self.coerce(value, "")
        except ApiError:
            return False
        return True

    def coerce(self, value: Any, path: str) -> Any:
        if isinstance(value, dict | list):
            raise _invalid(f"Invalid {self._label()}: {path} must be a {self._label()}", path)
        if self.kind == "str":
            text = value if isinstance(value, str) else str(value)
            if self.choices is not None and text not in self.choices:
                options = " or ".join(sorted(self.choices))
                raise _invalid(f"Invalid {path}: must be one of {options}", path)
            return text
        if self.kind == "int":
            if isinstance(value, bool):
                raise _invalid(f"Invalid integer: {value}", path)
            if isinstance(value, int):
                return value
            try:
                return int(str(value), 10)
            except ValueError:
                raise ApiError(
                    400,
                    f"Invalid integer: {value}",
                    code="parameter_invalid_integer",
                    param=path,
                    store_idempotent=False,
                ) from None
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if value in ("true", "false"):
                return value == "true"
            raise _invalid(f"Invalid boolean: {value}", path)
        if self.kind == "float":
            try:
                return float(value)
            except (TypeError, ValueError):
                raise _invalid(f"Invalid float: {value}", path) from None
        if self.kind == "decimal":
            try:
                number = decimal.Decimal(str(value))
            except decimal.InvalidOperation:
                raise _invalid(f"Invalid decimal: {value}", path) from None
            if not number.is_finite():
                raise _invalid(f"Invalid decimal: {value}", path)
            return normalise_decimal(number)
        return value

    def _label(self) -> str:
        return {"str": "string", "int": "integer", "bool": "boolean"}.get(self.kind, self.kind)


@dataclass(frozen=True)
class AnyNode(Node):
    """A value of no declared shape (passed through)."""

    def accepts(self, value: Any) -> bool:
        return True

    def coerce(self, value: Any, path: str) -> Any:
        return value


@dataclass(frozen=True)
class ListNode(Node):
    """A list; form bodies give it as ``a[0]=`` / ``a[]=``."""

    item: Node

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list) or (
            isinstance(value, dict) and all(k.isdigit() for k in value)
        )

    def coerce(self, value: Any, path: str) -> Any:
        if isinstance(value, dict):
            if not all(k.isdigit() for k in value):
                raise _invalid(f"Invalid array: {path} must be an array", path)
            ordered = [value[k] for k in sorted(value, key=int)]
            return [self.item.coerce(v, f"{path}[{i}]") for i, v in enumerate(ordered)]
        if isinstance(value, list):
            return [self.item.coerce(v, f"{path}[{i}]") for i, v in enumerate(value)]
        raise _invalid(f"Invalid array: {path} must be an array", path)


@dataclass(frozen=True)
class MapNode(Node):
    """A free-form map such as ``metadata``: any keys, typed values."""

    value: Node

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def coerce(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _invalid(f"Invalid hash: {path} must be a hash", path)
        return {
            key: (None if item == "" else self.value.coerce(item, _name(path, key)))
            for key, item in value.items()
        }


@dataclass(frozen=True)
class ObjectNode(Node):
    """A TypedDict: known fields, some required."""

    name: str
    fields: dict[str, Node] = field(default_factory=dict)
    required: frozenset[str] = frozenset()

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def coerce(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _invalid(f"Invalid object: {path} must be an object", path)
        result: dict[str, Any] = {}
        for key, item in value.items():
            node = self.fields.get(key)
            if node is None:
                raise unknown_param(_name(path, key))
            if item == "":
                if key in self.required:
                    raise missing_param(_name(path, key))
                result[key] = None
                continue
            result[key] = node.coerce(item, _name(path, key))
        for key in sorted(self.required):
            if key not in value:
                raise missing_param(_name(path, key))
        return result

    def with_field(self, path: tuple[str, ...], name: str, node: Node) -> ObjectNode:
        """A copy with one more optional field at ``path`` (for version-gated params)."""
        if not path:
            return ObjectNode(self.name, {**self.fields, name: node}, self.required)
        head, rest = path[0], path[1:]
        child = _object_branch(self.fields[head])
        return ObjectNode(
            self.name,
            {**self.fields, head: child.with_field(rest, name, node)},
            self.required,
        )


def _object_branch(node: Node) -> ObjectNode:
    if isinstance(node, ObjectNode):
        return node
    if isinstance(node, UnionNode):
        for option in node.options:
            if isinstance(option, ObjectNode):
                return option
    raise TypeError(f"{node!r} has no object branch")


@dataclass(frozen=True)
class UnionNode(Node):
    """One of several shapes, e.g. ``Literal['inf'] | int`` or ``Dict | int``."""

    options: tuple[Node, ...]

    def accepts(self, value: Any) -> bool:
        return any(option.accepts(value) for option in self.options)

    def coerce(self, value: Any, path: str) -> Any:
        for option in self.options:
            if option.accepts(value):
                return option.coerce(value, path)
        # No branch fits: report with the first branch's message.
        return self.options[0].coerce(value, path)


def normalise_decimal(number: decimal.Decimal) -> str:
    """Stripe's decimal string: plain notation, no trailing fractional zeros."""
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# --- building schemas from the SDK --------------------------------------------------------


def _resolve(annotation: Any, namespace: dict[str, Any]) -> Any:
    if isinstance(annotation, str):
        return _resolve(eval(annotation, namespace), namespace)
    if isinstance(annotation, ForwardRef):
        return _resolve(annotation.__forward_arg__, namespace)
    return annotation


def _build(annotation: Any, namespace: dict[str, Any], seen: dict[type, ObjectNode]) -> Node:
    annotation = _resolve(annotation, namespace)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (NotRequired, Required):
        return _build(args[0], namespace, seen)
    if origin in (Union, types.UnionType):
        options = [_build(arg, namespace, seen) for arg in args]
        return _merge_union(options)
    if origin is Literal:
        return ScalarNode("str", frozenset(str(a) for a in args))
    if origin in (list, typing.List):  # noqa: UP006 - SDK annotations use typing.List
        return ListNode(_build(args[0], namespace, seen))
    if origin in (dict, typing.Dict, Mapping):  # noqa: UP006
        return MapNode(_build(args[1], namespace, seen))
    if origin is not None and getattr(origin, "__name__", "") == "UntypedStripeObject":
        return MapNode(_build(args[0], namespace, seen) if args else AnyNode())
    if annotation is str:
        return ScalarNode("str")
    if annotation is bool:
        return ScalarNode("bool")
    if annotation is int:
        return ScalarNode("int")
    if annotation is float:
        return ScalarNode("float")
    if annotation is decimal.Decimal:
        return ScalarNode("decimal")
    if isinstance(annotation, type) and hasattr(annotation, "__required_keys__"):
        return _object(annotation, seen)
    return AnyNode()


def _merge_union(options: list[Node]) -> Node:
    """Fold ``Literal[...] | str`` into an enforced choice; drop ``Literal['']``."""
    choices: set[str] = set()
    rest: list[Node] = []
    for option in options:
        if isinstance(option, ScalarNode) and option.kind == "str" and option.choices:
            choices |= option.choices - {""}
        else:
            rest.append(option)
    has_open_str = any(isinstance(o, ScalarNode) and o.kind == "str" for o in rest)
    if choices:
        rest = [o for o in rest if not (isinstance(o, ScalarNode) and o.kind == "str")]
        rest.insert(0, ScalarNode("str", frozenset(choices)))
    elif not rest:
        return ScalarNode("str")
    if not choices and has_open_str and len(rest) == 1:
        return rest[0]
    # Untyped map twins (Dict | UntypedStripeObject) collapse to one.
    unique: list[Node] = []
    for option in rest:
        if option not in unique:
            unique.append(option)
    return unique[0] if len(unique) == 1 else UnionNode(tuple(unique))


def _object(cls: type, seen: dict[type, ObjectNode]) -> ObjectNode:
    if cls in seen:
        return seen[cls]
    module = importlib.import_module(cls.__module__)
    namespace: dict[str, Any] = dict(vars(typing))
    namespace.update(vars(module))
    required: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
    optional: frozenset[str] = getattr(cls, "__optional_keys__", frozenset())
    keys = required | optional
    if keys >= _REQUEST_OPTION_KEYS:
        keys = keys - _REQUEST_OPTION_KEYS
    node = ObjectNode(cls.__name__, {}, frozenset(required & keys))
    seen[cls] = node
    annotations: dict[str, Any] = cls.__annotations__
    for key in sorted(keys):
        node.fields[key] = _build(annotations[key], namespace, seen)
    return node


@functools.cache
def schema_for(dotted: str) -> ObjectNode:
    """The schema of ``stripe.params.<dotted>``, e.g. ``"billing.MeterCreateParams"``."""
    module_path, _, class_name = dotted.rpartition(".")
    module = importlib.import_module("stripe.params" + ("." + module_path if module_path else ""))
    cls = getattr(module, class_name)
    return _object(cls, {})


def coerce_params(schema: ObjectNode, raw: dict[str, Any]) -> dict[str, Any]:
    """Check ``raw`` against ``schema`` and convert it; raises Stripe's 400s."""
    result = schema.coerce(raw, "")
    assert isinstance(result, dict)
    return result
