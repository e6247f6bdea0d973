"""Reading a message straight from its text, with regular expressions compiled from its Shapes.

Walking an lxml tree from Python costs a proxy object per element, more than lxml takes to
parse and validate the element. For the messages that come in bulk (pacs.008), scopay therefore
reads the carried values from the message's text, with one regular expression per component
compiled from the same Shape tables the tree reader uses, and falls back to the tree reader for
anything that expression does not take.

This reading always comes after the hardened parse (and the XSD, when configured) accepted the
bytes: the text is well-formed XML that lxml has already read, into a tree or, with the XSD
checking it as it went, into nothing (document.validated_type). The expressions take only a
plain form of it, whose meaning is therefore plain too:

- every element scopay reads starts `<Name>` (with the one prefix its message element has in
  the tree, or none), with no attributes, hence no namespace declarations: each is in the
  namespace lxml found for the message element. Amounts alone carry `Ccy="XXX"`. End tags are
  taken by their shape (`</...>`): in well-formed text, once an element's children are matched
  whole, the end tag that follows is its own;
- between elements only XML white space; leaf texts hold no markup; line ends are read as the
  parser reads them (CR LF and a lone CR as LF, read_line_ends), and the five predefined
  entities and character references are expanded as the parser does. Each expression comes
  compiled twice: taking WHITE between elements, and taking nothing there (COMPACT), which
  takes compact texts in fewer steps and alike;
- no comments, processing instructions or CDATA inside the message element;
- children come in ISO order with the cardinality the Shape gives; a refused child (AG03) or an
  unknown one is not in the expression at all. Children scopay skips may hold any elements down
  to SKIPPED_LEVELS levels (within DEPTH_MAX), since the parse proved them well-formed. The
  expressions for a parse that did not report namespace errors (document.validated_type:
  `strict` below) take none with a namespace of its own: no prefix but the message element's
  on names, none on attributes, and no `xmlns` attribute (any_element). Everything they take
  is then namespace-well-formed once the text is well-formed and its root declares only what
  validated_type lets it.

Each leaf reader has a text rule, registered next to it: a pattern its text must match, which
the expression embeds (Max lengths, code lists, UETRs, dates ...), and a conversion applying
the rest of the reader's rule (the value of a code, an amount in minor units ...). Patterns see
the text as written: a text holding a reference (`&amp;`) fails every pattern but the MaxNText
ones, where the written text is never shorter than the read one.

So whatever an expression and the conversions take, the tree reader takes too, with the same
values; the converse need not hold. What they do not take (another layout, any refusal) raises
Unreadable and is read from the tree, which gives every refusal its reason code, text and place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any, Protocol

from scopay.iso20022.parsing import DEPTH_MAX
from scopay.iso20022.shape import Shape, TextReader

SKIPPED_LEVELS = 6  # element levels the expressions take below a child scopay skips

WHITE = "[ \t\r\n]*+"
# An end tag, after its `<`. In the well-formed text the parse accepted it closes the element
# the expression is in, since every child was matched whole: no need to spell the name.
_END_TAG = "/[^>]*+>"
# A start tag up to its `>` or `/>`, after its `<`: a name (not `/`, `!` or `?`, which start
# end tags, comments, CDATA and processing instructions), attributes, quoted values.
_START_TAG = r"""[^/!?](?:[^>"'/]++|"[^"]*+"|'[^']*+')*+"""
# What the expressions for compact texts take between elements (where WHITE would take
# nothing): an expression with WHITE takes whatever one with COMPACT takes, alike.
COMPACT = ""
# What may stand between a byte order mark and the root's start tag: the XML declaration,
# comments and white space (ASCII alone, so it reads the bytes too: document._DECLARED_TYPE).
BEFORE_ROOT = r"(?:<\?xml[ \t\r\n][^?]*+\?>)?(?:[ \t\r\n]++|<!--(?:[^-]++|-(?!-))*+-->)*+"
# Everything up to past the root's start tag.
PROLOGUE = rf"\A\ufeff?{BEFORE_ROOT}<{_START_TAG}>{WHITE}"

Path = tuple[str, ...]
Convert = Callable[[str], Any]


class Unreadable(Exception):
    """A text the expressions cannot vouch for: read the message from its tree instead."""


# Text rules --------------------------------------------------------------------------------

class TextRule:
    """A leaf reader's rule on texts: `pattern` (no groups) the whole text must match, and
    `convert` (None: the text itself) giving the value or raising Unreadable. A conversion
    depends on its text alone, so a batch's transactions repeating a text (agents' BICs,
    dates, codes, rates) have it converted once, unless the rule's texts are `distinct`
    (amounts), where looking for repeats would cost more than it saves."""

    __slots__ = ("pattern", "convert", "attribute", "distinct")

    def __init__(self, pattern: str, convert: Convert | None = None,
                 attribute: str | None = None, distinct: bool = False) -> None:
        if re.compile(pattern).groups:
            raise ValueError(f"text rule pattern {pattern!r} has groups")
        self.pattern = pattern
        self.convert = convert
        # An attribute read with the text, written first in the group: `XXX">text` for Ccy.
        self.attribute = attribute
        self.distinct = distinct


_text_rules: dict[Any, TextRule] = {}


def text_rule(reader: Any, pattern: str, convert: Convert | None = None,
              attribute: str | None = None, distinct: bool = False) -> None:
    """Register a leaf reader's text rule (see TextRule)."""
    _text_rules[reader] = TextRule(pattern, convert, attribute, distinct)


def rule_of(reader: Any) -> TextRule:
    rule = _text_rules.get(reader)
    if rule is None and isinstance(reader, TextReader):
        # A written text (line ends read) is never shorter than the text it reads as.
        rule = _text_rules[reader] = TextRule(f"[^<]{{1,{reader.length_max}}}+")
    if rule is None:
        raise LookupError(f"no text rule for {reader!r}")
    return rule


def non_capturing(pattern: str) -> str:
    """`pattern` with its groups made non-capturing, to embed a reader's own pattern (one
    without parentheses in character classes, as scopay's are)."""
    result = re.sub(r"(?<!\\)\((?!\?)", "(?:", pattern)
    result = re.sub(r"\(\?P<\w+>", "(?:", result)
    if re.compile(result).groups:
        raise ValueError(f"cannot embed {pattern!r}")
    return result


def code_rule(by_value: dict[str, Any]) -> tuple[str, Convert]:
    """Pattern and conversion of a code list: one of its codes, and the value it stands for."""
    pattern = "|".join(re.escape(code) for code in sorted(by_value, key=len, reverse=True))
    return f"(?:{pattern})", by_value.__getitem__


def read_line_ends(text: str) -> str:
    """`text` with its line ends as the parser reads them (XML 1.0, 2.11): CR LF and a lone CR
    become LF. The expressions match the text after this; character references (`&#13;`) stay
    references until unescape."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


_REFERENCE = re.compile(r"&(?:#([0-9]+);|#x([0-9a-fA-F]+);|(amp|lt|gt|quot|apos);)")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _expand(match: re.Match) -> str:
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        return _ENTITIES[name]
    return chr(int(decimal) if decimal is not None else int(hexadecimal, 16))


def unescape(text: str) -> str:
    """A leaf's text as the parser reads it: predefined entities and character references
    expanded (the parse refused any other entity, and any reference to a non-XML character)."""
    if "&" not in text:
        return text
    return _REFERENCE.sub(_expand, text)


# Compiling ---------------------------------------------------------------------------------

# A name with no prefix, in text the parse accepted (which proved it a name).
_NAME = r"""[^ \t\r\n/>!?:"'=<]++"""
_any_elements: dict[tuple[int, str | None], str] = {}


def any_element(levels: int, strict_prefix: str | None = None) -> str:
    """An element of at most `levels` levels, any names, attributes or text, in well-formed
    text (start and end tags are then taken by their shape alone; see _START_TAG, _END_TAG).
    With `strict_prefix` (the message element's prefix, "" for none), one with no namespace of
    its own: names unprefixed or of that prefix, attribute names unprefixed, no `xmlns`
    attribute. Such a subtree needs none of the parser's namespace checks, which the parse
    with no tree does not report (document.validated_type, parsing.valid_without_tree)."""
    pattern = _any_elements.get((levels, strict_prefix))
    if pattern is None:
        content = ("[^<]++" if levels <= 1
                   else f"[^<]++|{any_element(levels - 1, strict_prefix)}")
        if strict_prefix is None:
            start = _START_TAG
        else:
            white = "[ \t\r\n]"
            start = (f"(?:{re.escape(strict_prefix)})?{_NAME}(?:{white}++(?!xmlns){_NAME}"
                     f"""{white}*+={white}*+(?:"[^"]*+"|'[^']*+'))*+{white}*+""")
        pattern = _any_elements[levels, strict_prefix] = (
            f"<{start}(?:/>|>(?:{content})*+<{_END_TAG})")
    return pattern


_LEAF, _MARKER, _REPEATED, _DISTINCT = 0, 1, 2, 3  # _DISTINCT: a leaf of distinct texts
_BY_GROUP_FROM = 8  # matches from which rows_of converts group by group


class Picker(Protocol):
    """Compiled.picker's function: the values of its paths from a match's groups."""

    indexes: tuple[int, ...]  # where those values are in values_of's list

    def __call__(self, groups: tuple, escaped: bool) -> tuple: ...


class Compiled:
    """One element's expression: its groups in order with the path (names below the element)
    of each, how each group's text becomes a value, and for repeated carried children the
    expression of one repetition (Repeated)."""

    __slots__ = ("pattern", "paths", "converts", "_plain", "_escaped", "_repeating")

    def __init__(self, pattern: str, captures: list[tuple[Path, int, Any]]) -> None:
        self.pattern = re.compile(pattern)
        if self.pattern.groups != len(captures):
            raise ValueError("an embedded pattern has groups of its own")
        self.paths = tuple(path for path, _, _ in captures)
        self.converts = tuple(convert for _, _, convert in captures)
        self._plain = tuple((i, convert) for i, (_, kind, convert) in enumerate(captures)
                            if convert is not None)
        self._escaped = tuple(
            (i, _escaping(kind, convert)) for i, (_, kind, convert) in enumerate(captures)
            if kind != _MARKER)
        self._repeating = frozenset(
            i for i, (_, kind, _) in enumerate(captures) if kind == _LEAF)

    def index(self, *path: str) -> int:
        """Where the value of `path` is in values_of's list (ValueError if nowhere)."""
        return self.paths.index(path)

    def getter(self, *paths: Path) -> Callable[[list], tuple]:
        """The values of `paths` (two or more), in that order, from values_of's list."""
        return itemgetter(*self.indexes(*paths))

    def indexes(self, *paths: Path) -> tuple[int, ...]:
        """Where the values of `paths` (each once) are in values_of's list."""
        if len(set(paths)) != len(paths):
            raise ValueError("a path is given twice")
        return tuple(self.index(*path) for path in paths)

    def picker(self, *paths: Path) -> Picker:
        """A function of a match's groups and `escaped` giving the values of `paths` (two or
        more, each once), in that order, as values_of gives them: every group is converted,
        so each conversion still checks its text.

        It is generated, as payment.positional_constructor is: one local per group and one
        line per conversion take about half the time of values_of's loop over its list and
        an itemgetter, which every message pays once for its header and which one-transaction
        messages pay again for their transaction. Texts with references (`escaped`, rare) go
        through values_of."""
        indexes = self.indexes(*paths)
        if len(indexes) < 2:
            raise ValueError("a picker takes two paths or more")
        names = [f"v{index}" for index in range(len(self.paths))]
        namespace: dict[str, Any] = {"pick": itemgetter(*indexes),
                                     "values_of": self.values_of}
        lines = ["def picked(groups, escaped):",
                 "    if escaped:",
                 "        return pick(values_of(groups, True))",
                 f"    {', '.join(names)}, = groups"]
        for index, convert in self._plain:
            namespace[f"convert{index}"] = convert
            lines.append(f"    if v{index}: v{index} = convert{index}(v{index})")
        lines.append(f"    return ({''.join(f'v{index}, ' for index in indexes)})")
        exec("\n".join(lines), namespace)  # source made of indexes alone
        picked = namespace["picked"]
        picked.indexes = indexes
        return picked

    def values_of(self, groups: tuple, escaped: bool) -> list:
        """The groups of a match as values: converted, and expanded when the text has
        references (`escaped`). Absent elements are None; a marker group (element present) is
        '', and so is a repeated child's group without repetitions (leaf texts never are)."""
        values = list(groups)
        for index, convert in self._escaped if escaped else self._plain:
            text = values[index]
            if text:
                values[index] = convert(text)
        return values

    def rows_of(self, found: list[tuple], escaped: bool, pick: Picker) -> Iterable[tuple]:
        """The values `pick` (a picker of this expression, built once by the caller) takes of
        many matches, as values_of gives them. Many are converted group by group rather than
        match by match: each conversion then runs in a loop of its own, which keeps processor
        caches warm."""
        if len(found) < _BY_GROUP_FROM:
            return [pick(groups, escaped) for groups in found]
        indexes = pick.indexes
        columns: list[Iterable] = list(zip(*found, strict=True))  # one tuple per group
        repeating = self._repeating
        for index, convert in self._escaped if escaped else self._plain:
            column = columns[index]
            if not any(column):  # in no transaction: nothing to convert
                continue
            if index in repeating:  # each distinct text converted once (TextRule)
                values = {text: convert(text) if text else text for text in set(column)}
                columns[index] = map(values.__getitem__, column)
            else:
                columns[index] = [convert(text) if text else text for text in column]
        return zip(*[columns[index] for index in indexes], strict=True)


def _escaping(kind: int, convert: Any) -> Convert:
    if kind == _REPEATED:
        return convert.escaped
    if convert is None:
        return unescape
    return lambda text: convert(unescape(text))


class Repeated:
    """Conversion of a repeated carried child's group: the values of each repetition."""

    __slots__ = ("item",)

    def __init__(self, item: Compiled) -> None:
        self.item = item

    def read(self, text: str, escaped: bool) -> tuple[list, ...]:
        items = []
        pattern, position, end = self.item.pattern, 0, len(text)
        while position < end:
            match = pattern.match(text, position)
            if match is None:
                raise Unreadable
            items.append(self.item.values_of(match.groups(), escaped))
            position = match.end()
        return tuple(items)

    def __call__(self, text: str) -> tuple[list, ...]:
        return self.read(text, False)

    def escaped(self, text: str) -> tuple[list, ...]:
        return self.read(text, True)


class _Compiler:
    """Element expressions start after their `<` and end past the `<` that follows them, so
    that each optional child's alternative starts with its name: sre's branch skips it at once
    when the next element's name starts with another letter. `white` is what they take
    between elements: WHITE, or nothing for compact texts (COMPACT)."""

    def __init__(self, prefix: str, markers: frozenset[Path] | None, white: str,
                 strict: bool) -> None:
        self.prefix = prefix  # "" or "p:"
        self.markers = markers  # components whose presence is captured (None: all)
        self.white = white
        self.strict = strict  # skipped subtrees with no namespace of their own (any_element)
        self.captures: list[tuple[Path, int, Any]] = []

    def element(self, name: str, reader: Any, path: Path, depth: int, capture: bool) -> str:
        """`name>...</name>` at `depth`, the white space after it and the next `<`."""
        tag, white = re.escape(self.prefix + name), self.white
        if reader is None:  # skipped: any content within the depth limit
            levels = min(SKIPPED_LEVELS, DEPTH_MAX - depth)
            inside = any_element(levels, self.prefix if self.strict else None)
            content = f"(?:[^<]++|{inside})*+" if levels > 0 else "[^<]*+"
            return f"{tag}(?:/>|>{content}<{_END_TAG}){white}<"
        if isinstance(reader, Shape):
            marker = ""
            if capture and (self.markers is None or (*path, name) in self.markers):
                marker = "()"
                self.captures.append(((*path, name), _MARKER, None))
            inner = self.children(reader, (*path, name), depth, capture)
            if reader.required or reader.choice:
                return f"{tag}{marker}>{white}<{inner}{_END_TAG}{white}<"
            # No child required: `<name/>` reads as `<name></name>`.
            return f"{tag}{marker}(?:/>|>{white}<{inner}{_END_TAG}){white}<"
        rule = rule_of(reader)
        text = rule.pattern
        if capture:
            text = f"({text})"
            self.captures.append(((*path, name), _DISTINCT if rule.distinct else _LEAF,
                                  rule.convert))
        start = f'{tag} {rule.attribute}="' if rule.attribute else f"{tag}>"
        return f"{start}{text}<{_END_TAG}{white}<"

    def children(self, shape: Shape, path: Path, depth: int, capture: bool) -> str:
        """The children of a shape, as one atomic group: once they matched, a failure further
        on never tries them another way (the grammar is deterministic: no other way matches)."""
        limits = dict(shape.limited)
        parts = []
        for name, many in shape.children:
            if name in shape.refused:
                continue
            reader = shape.readers.get(name)
            required = name in shape.required
            limit = limits.get(name)
            if many and reader is not None and limit != 1:
                element = self.repeated(name, reader, path, depth + 1, capture, required, limit)
            elif many:
                element = self.element(name, reader, path, depth + 1, capture)
                low, high = int(required), "" if limit is None else limit
                element = f"(?:{element}){{{low},{high}}}+"
            else:
                element = self.element(name, reader, path, depth + 1, capture)
                if not required and not shape.choice:
                    element = f"(?:{element}|)"
            parts.append(element)
        if shape.choice:
            return "(?>" + "|".join(parts or ["(?!)"]) + ")"
        return "(?>" + "".join(parts) + ")"

    def repeated(self, name: str, reader: Any, path: Path, depth: int, capture: bool,
                 required: bool, limit: int | None) -> str:
        """A repeated carried child: one group holding all repetitions, read by Repeated."""
        item = self.element(name, reader, path, depth, capture=False)
        low, high = int(required), "" if limit is None else limit
        repetitions = f"(?:{item}){{{low},{high}}}+"
        if not capture:
            return repetitions
        markers = self.markers and frozenset(
            marker[len(path):] for marker in self.markers if marker[:len(path)] == path)
        inner = _Compiler(self.prefix, markers, self.white, self.strict)
        item_pattern = inner.element(name, reader, (), depth, capture=True)
        self.captures.append(
            ((*path, name), _REPEATED, Repeated(Compiled(item_pattern, inner.captures))))
        return f"({repetitions})"


def compile_element(name: str, shape: Shape, prefix: str, depth: int, before: str = "",
                    markers: Iterable[Path] | None = None, white: str = WHITE,
                    strict: bool = False) -> Compiled:
    """The expression of element `name` read by `shape` at `depth` (the root is at 1), after
    `before`, which ends with the element's `<`; values are keyed by paths below the element.
    The expression ends past the `<` that follows the element. Of the components, only those
    in `markers` (all when None) have a group telling whether they are present. Between
    elements it takes `white`: WHITE, or COMPACT. `strict`: skipped subtrees with no
    namespace of their own (any_element)."""
    compiler = _Compiler(prefix, None if markers is None else frozenset(markers), white,
                         strict)
    tag = re.escape(prefix + name)
    inner = compiler.children(shape, (), depth, capture=True)
    return Compiled(f"{before}{tag}>{white}<{inner}{_END_TAG}{white}<", compiler.captures)


def compile_skipped(name: str, prefix: str, depth: int, white: str = WHITE,
                    strict: bool = False) -> str:
    """The expression of a child scopay skips, named `name`, at `depth` (from after its `<`
    to past the next `<`)."""
    return _Compiler(prefix, None, white, strict).element(name, None, (), depth,
                                                          capture=False)
