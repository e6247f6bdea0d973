"""Reading an element against its ISO 20022 shape, in one pass, without XPath.

A Shape lists the children an ISO message component may have, in ISO order, with their
cardinality, written as `"PmtId PmtTpInf? ChrgsInf* CdtTrfTxInf+ AdrLine*7"` (no suffix:
exactly one; `?` at most one; `*` any number, or at most n; `+` at least one), and says how
each child scopay carries is read: a leaf reader (text to a checked value) or a nested Shape.
A child with neither is accepted and not carried; one named in `refused` is answered AG03
because scopay cannot carry it without losing meaning.

read_shape walks the children once, refuses unknown, misplaced, repeated or missing ones, reads
the carried ones into a dict of values (no lxml element is kept: holding lxml proxies is what
makes tree walking slow) and hands that dict, with the element for error locations, to the
shape's `finish` function when it has one. scopay's parser so enforces structure, types and
code lists on its own, whether or not an XSD is configured. Only the children scopay skips
can nest arbitrarily deep, so their subtrees are where the depth limit is checked; every leaf
reader refuses a leaf that has children.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NoReturn

from lxml import etree

from scopay.iso20022.codes import ReasonCode
from scopay.iso20022.parsing import MessageRefused, check_subtree_depth

_CHILD = re.compile(r"(\w+)([?*+]?)([0-9]*)")

Fields = dict[str, Any]
LeafReader = Callable[[etree._Element], Any]
Finish = Callable[[Fields, etree._Element], Any]


class Shape:
    """The children an ISO component may have and how scopay reads each; compiled per namespace."""

    __slots__ = ("name", "children", "required", "limited", "refused", "choice", "finish",
                 "readers", "chains", "_compiled", "_chains")

    def __init__(self, name: str, children: str, *, choice: bool = False,
                 refused: tuple[str, ...] = (), finish: Finish | None = None,
                 chains: dict[tuple[str, ...], LeafReader] | None = None,
                 **readers: Shape | LeafReader) -> None:
        self.name = name
        self.choice = choice
        self.finish = finish
        self.readers = readers
        # Common instances that are a chain of only children ending in one leaf (an agent that
        # is FinInstnId/BICFI), with the reader giving what finish would: read without a dict.
        self.chains = chains or {}
        self._chains: dict[str, dict] = {}
        self.children: list[tuple[str, bool]] = []  # (name, may repeat), in ISO order
        self.required: list[str] = []
        self.limited: list[tuple[str, int]] = []  # repeating children with a maximum
        for token in children.split():
            match = _CHILD.fullmatch(token)
            assert match is not None, f"bad shape token {token!r} in {name}"
            child, suffix, limit = match.groups()
            self.children.append((child, suffix in ("*", "+")))
            if suffix in ("", "+") and not choice:
                assert child in readers, f"{name}: required {child} needs a reader"
                self.required.append(child)
            if limit:
                self.limited.append((child, int(limit)))
        names = {child for child, _ in self.children}
        assert set(readers) <= names, f"{name}: readers for unknown children"
        self.refused = frozenset(refused)
        assert self.refused <= names, f"{name}: refused unknown children"
        self._compiled: dict[str, dict[str, tuple]] = {}

    def compiled(self, ns: str) -> tuple:
        """(qualified tag -> child entry, required names, has occurrence rules, finish)."""
        compiled = self._compiled.get(ns)
        if compiled is None:
            index = {
                ns + child: self._entry(child, position, many)
                for position, (child, many) in enumerate(self.children)
            }
            compiled = self._compiled[ns] = (
                index, tuple(self.required), bool(self.limited or self.choice), self.finish)
        return compiled

    def compiled_chains(self, ns: str) -> dict:
        """Nested dict of qualified tags along each chain, ending in its leaf reader."""
        chains = self._chains.get(ns)
        if chains is None:
            chains = self._chains[ns] = {}
            for path, reader in self.chains.items():
                table = chains
                for name in path[:-1]:
                    table = table.setdefault(ns + name, {})
                table[ns + path[-1]] = reader
        return chains

    def _entry(self, child: str, position: int, many: bool) -> tuple:
        """(name, position, may repeat, kind, nested shape | text length | leaf reader)."""
        reader = self.readers.get(child)
        if child in self.refused:
            return child, position, many, _LEAF, refuse_unsupported
        if isinstance(reader, Shape):
            return child, position, many, _NESTED, reader
        if isinstance(reader, TextReader):
            return child, position, many, _TEXT, reader.length_max
        return child, position, many, _LEAF, reader or skip_subtree


class TextReader:
    """A leaf reader for ISO MaxNText; read_shape reads these inline, the commonest leaves."""

    __slots__ = ("length_max",)

    def __init__(self, length_max: int) -> None:
        self.length_max = length_max

    def __call__(self, element: etree._Element) -> str:
        text = element.text
        if text is None or len(text) > self.length_max or len(element):
            refuse_text(element, self.length_max)
        return text


def refuse_text(element: etree._Element, length_max: int) -> NoReturn:
    text = element.text
    if len(element):
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT, "a text field holds elements")
    if text is None:
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT, "text expected, found none")
    refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
              f"text of {len(text)} characters; at most {length_max}")


_NESTED, _TEXT, _LEAF = 0, 1, 2
SKIPPED = object()


def keep_element(element: etree._Element) -> etree._Element:
    """Leaf reader handing the element on unread, for what needs context read first (the
    transactions of a message need its group header)."""
    return element


def read_shape(element: etree._Element, shape: Shape, ns: str) -> Any:
    """Read an element's children by its shape: a dict of carried values, or what finish makes."""
    index, required, has_occurrence_rules, finish = (
        shape._compiled.get(ns) or shape.compiled(ns))
    found: Fields = {}
    last = -1
    # getchildren() builds the child list in C; iterating the element is several times slower.
    for child in element.getchildren():
        entry = index.get(child.tag)
        if entry is None:
            refuse_unexpected(element, child, shape, ns)
        name, position, many, kind, how = entry
        if position <= last and (position < last or not many):
            refuse_at(child, ReasonCode.INVALID_FILE_FORMAT,
                      f"{name} is out of order or repeated in {shape.name}")
        last = position
        if kind == _TEXT:  # inline TextReader: most leaves are texts
            value = child.text
            if value is None or len(value) > how or len(child):
                refuse_text(child, how)
        elif kind == _NESTED:
            value = read_chain(child, how, ns) if how.chains else _NOT_A_CHAIN
            if value is _NOT_A_CHAIN:
                value = read_shape(child, how, ns)
        else:
            value = how(child)
            if value is SKIPPED:
                continue
        if many:
            found.setdefault(name, []).append(value)
        else:
            found[name] = value
    for name in required:
        if name not in found:
            refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
                      f"{shape.name} lacks its required {name}")
    if has_occurrence_rules:
        check_occurrences(element, shape, found)
    return found if finish is None else finish(found, element)


_NOT_A_CHAIN = object()


def read_chain(element: etree._Element, shape: Shape, ns: str) -> Any:
    """The value of an element that is one of its shape's chains, or _NOT_A_CHAIN."""
    table = shape._chains.get(ns) or shape.compiled_chains(ns)
    node = element
    while True:
        children = node.getchildren()
        if len(children) != 1:
            return _NOT_A_CHAIN
        node = children[0]
        step = table.get(node.tag)
        if step is None:
            return _NOT_A_CHAIN
        if not isinstance(step, dict):
            return step(node)
        table = step


def check_occurrences(element: etree._Element, shape: Shape, found: Fields) -> None:
    for name, limit in shape.limited:
        if len(found.get(name, ())) > limit:
            refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
                      f"{shape.name} has more than {limit} {name}")
    if shape.choice and len(element) != 1:
        options = " or ".join(child for child, _ in shape.children)
        refuse_at(element, ReasonCode.INVALID_FILE_FORMAT,
                  f"{shape.name} must hold exactly one of {options}")


def refuse_unsupported(element: etree._Element) -> NoReturn:
    refuse_at(element, ReasonCode.TRANSACTION_NOT_SUPPORTED,
              f"{etree.QName(element).localname} is not supported: scopay cannot carry it "
              "through")


def skip_subtree(element: etree._Element) -> object:
    """Accept a child scopay does not carry, once its subtree keeps within DEPTH_MAX."""
    check_subtree_depth(element)
    return SKIPPED


def refuse_unexpected(parent: etree._Element, child: etree._Element, shape: Shape,
                      ns: str) -> NoReturn:
    qname = etree.QName(child)
    if qname.namespace != ns[1:-1]:
        refuse_at(child, ReasonCode.INVALID_FILE_FORMAT,
                  f"{qname.localname} is in namespace {qname.namespace or '(none)'}, "
                  f"not the message's {ns[1:-1]}")
    refuse_at(child, ReasonCode.INVALID_FILE_FORMAT,
              f"{shape.name} has no child {qname.localname} in ISO 20022")


def refuse_at(element: etree._Element, reason_code: str, text: str) -> NoReturn:
    """Raise MessageRefused naming where in the message the broken rule sits."""
    raise MessageRefused(reason_code, f"{text} (at {path_of(element)}, line {element.sourceline})")


def refuse_below(element: etree._Element, path: tuple[str, ...], reason_code: str,
                 text: str) -> NoReturn:
    """refuse_at the first element along `path` (local names) below `element`, or at it."""
    ns = qualified(element)
    for name in path:
        child = element.find(ns + name)
        if child is None:
            break
        element = child
    refuse_at(element, reason_code, text)


def path_of(element: etree._Element) -> str:
    steps = []
    node: etree._Element | None = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            siblings = [sibling for sibling in parent if sibling.tag == node.tag]
            if len(siblings) > 1:
                name += f"[{siblings.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


def qualified(element: etree._Element) -> str:
    """The `{namespace}` prefix of an element's tag: children are written in the same one."""
    tag = element.tag
    return tag[: tag.index("}") + 1] if tag.startswith("{") else ""


def add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    """Append child `name` in the parent's namespace, with text when given."""
    child = etree.SubElement(parent, qualified(parent) + name)
    if text is not None:
        child.text = text
    return child
