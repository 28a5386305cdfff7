"""YAML and JSON documents that remember where each value was written, so a refusal can name the line.

A file is composed into PyYAML's node tree (JSON is read by the same parser: its documents are YAML) and
turned into plain values with YAML 1.2's core scalars: only true/false are booleans (YAML 1.1 reads a key
``on:``, as a segment trigger has, as the boolean true), numbers with a fraction are Decimal (an amount never
passes through a float), dates stay text (the models parse them), and a key written twice is refused rather
than silently replaced. ``line_of`` follows a path in the document's own keys ("steps[1].duration",
"definition.all.0.value": the paths the models' refusals start with) to the line it was written on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class SourceInvalid(ValueError):
    """A file that is not a readable YAML or JSON document; ``line`` (1-based) where the problem is."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.2's core schema for plain scalars: no yes/no/on/off booleans, no sexagesimal numbers (an
    unquoted ``until_time: 21:00`` is text, not 1260), no timestamps."""


_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
             "tag:yaml.org,2002:timestamp"}
_Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()}
_Resolver.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                list("tTfF"))
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_Resolver.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_Resolver.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def reads_as_text(plain: str) -> bool:
    """Whether ``plain``, written unquoted, reads back as text here (not a number or a boolean)."""
    tag: str = _Resolver().resolve(yaml.ScalarNode, plain, (True, False))  # type: ignore[no-untyped-call]
    return tag == "tag:yaml.org,2002:str"


class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
              yaml.constructor.SafeConstructor, _Resolver):
    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)


@dataclass(frozen=True)
class Source:
    """A document read from a file: its values and its node tree (for lines)."""

    data: Any
    root: Node


def read(text: str) -> Source:
    """The one document of a YAML or JSON text; SourceInvalid naming the line of a syntax error."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise SourceInvalid(f"not valid YAML or JSON: {error.problem or error.context}",
                            mark.line + 1 if mark else None) from None
    except yaml.YAMLError as error:
        raise SourceInvalid(f"not valid YAML or JSON: {error}", None) from None
    finally:
        loader.dispose()
    if root is None:
        raise SourceInvalid("the file is empty", 1)
    return Source(_value(loader, root), root)


def _value(loader: _Loader, node: Node) -> Any:
    if isinstance(node, MappingNode):
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _value(loader, key_node)
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise SourceInvalid(f"a key must be text, not {key!r}", key_node.start_mark.line + 1)
            if key in mapping:
                raise SourceInvalid(f"{key}: written twice in the same mapping", key_node.start_mark.line + 1)
            mapping[key] = _value(loader, value_node)
        return mapping
    if isinstance(node, SequenceNode):
        return [_value(loader, item) for item in node.value]
    assert isinstance(node, ScalarNode)
    if node.tag == "tag:yaml.org,2002:float":
        return _decimal(node)
    if node.tag == "tag:yaml.org,2002:int" and _INT.match(node.value):
        text = str(node.value)
        return int(text, 0) if text[:2] in ("0o", "0x") else int(text)
    return loader.construct_object(node, deep=True)


def _decimal(node: ScalarNode) -> Decimal:
    try:
        number = Decimal(str(node.value).replace("_", ""))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise SourceInvalid(f"{node.value} is not a number this project accepts", node.start_mark.line + 1)
    return number


_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def path_parts(path: str) -> list[str | int]:
    """"steps[1].paths[0].steps" and "definition.all.0.value" as their keys and indexes."""
    parts: list[str | int] = []
    for index, key in _PART.findall(path):
        parts.append(int(index) if index else int(key) if key.isdigit() else key)
    return parts


def line_of(root: Node, parts: list[str | int]) -> int:
    """The line (1-based) of the deepest node the path reaches: the key's line for a mapping's member, the
    mapping's own line when the member is missing."""
    node, line = root, root.start_mark.line + 1
    for part in parts:
        if isinstance(node, MappingNode):
            found = next(((k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == str(part)), None)
            if found is None:
                return line
            node, line = found[1], found[0].start_mark.line + 1
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def block_start(root: Node, key: str) -> int | None:
    """The line just before a top-level text value's first line: add a line within the text to get the file's
    line ("html: line 3" of a block scalar ``html: |``)."""
    if not isinstance(root, MappingNode):
        return None
    for key_node, value_node in root.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key and isinstance(value_node, ScalarNode):
            # A block scalar (| or >) starts on the line after its indicator; a flow scalar on its own line.
            return value_node.start_mark.line + (1 if value_node.style in ("|", ">") else 0)
    return None
