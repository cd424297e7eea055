"""The OData query options of the SensorThings API, parsed and checked. Pure: no I/O, no SQL.

OGC 18-088 (SensorThings API 1.1) §9.3 "Requesting data" takes its query language from OData:
``$filter`` expressions (§9.3.3.5: comparison, logical and arithmetic operators, built-in
functions), ``$orderby``, ``$select``, ``$expand`` with nested options, ``$top``, ``$skip`` and
``$count``. This module turns their text into small immutable values — an expression tree and
``QueryOptions`` — and refuses anything malformed with a ``BadRequest`` naming the option.
``translate`` turns the trees into SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any

from .errors import BadRequest

#: ``$top`` when the client gives none, and the most one page holds (server-driven paging, §9.3.3.6).
DEFAULT_TOP = 100
MAX_TOP = 10_000

# ── the expression tree ───────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: ``kind`` is string, number, boolean, null, datetime, date, time or geometry."""

    value: Any
    kind: str


@dataclass(frozen=True, slots=True)
class Path:
    """A property path such as ``name``, ``Datastream/id`` or ``properties/owner``."""

    segments: tuple[str, ...]

    def __str__(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "not" or "-"
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # eq ne gt ge lt le · and or · add sub mul div mod
    left: Expr
    right: Expr


Expr = Literal | Path | Call | Unary | Binary

#: Binding power of the binary operators (OData URL conventions §5.1.1.17, loosest first).
BINDING = {
    "or": 1, "and": 2, "eq": 3, "ne": 3, "gt": 4, "ge": 4, "lt": 4, "le": 4,
    "add": 5, "sub": 5, "mul": 6, "div": 6, "mod": 6,
}
COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
LOGICAL = frozenset({"and", "or"})
ARITHMETIC = frozenset({"add", "sub", "mul", "div", "mod"})

# ── tokens ────────────────────────────────────────────────────────────────────────────────

_OFFSET = r"(?:Z|[+\- ]\d{2}:?\d{2})"  # a space stands for an unencoded "+" turned into one
_TOKENS = re.compile(
    rf"""
    (?P<space>\s+)
  | (?P<geometry>(?:geography|geometry)'[^']*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{{4}}-\d{{2}}-\d{{2}}T\d{{2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?{_OFFSET}?)
  | (?P<date>\d{{4}}-\d{{2}}-\d{{2}})
  | (?P<time>\d{{2}}:\d{{2}}:\d{{2}}(?:\.\d+)?)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_@][\w.@]*)
  | (?P<punct>[(),/-])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # string datetime date time number name punct geometry end
    text: str
    at: int


def tokens(text: str, option: str) -> list[Token]:
    """The tokens of an expression, ending with an ``end`` token; unknown characters are refused."""
    found, at = [], 0
    while at < len(text):
        match = _TOKENS.match(text, at)
        if match is None:
            raise BadRequest(f"{option}: unexpected {text[at]!r} at character {at}", field=option)
        if match.lastgroup != "space":
            found.append(Token(match.lastgroup, match.group(), at))
        at = match.end()
    found.append(Token("end", "", len(text)))
    return found


def _literal(token: Token, option: str) -> Literal:
    text = token.text
    if token.kind == "string":
        return Literal(text[1:-1].replace("''", "'"), "string")
    if token.kind == "number":
        is_integer = re.fullmatch(r"-?\d+", text) is not None
        return Literal(int(text) if is_integer else float(text), "number")
    if token.kind == "datetime":
        return Literal(_datetime(text, option), "datetime")
    if token.kind == "date":
        return Literal(date.fromisoformat(text), "date")
    if token.kind == "time":
        return Literal(time.fromisoformat(text), "time")
    return Literal(text, "geometry")


def _datetime(text: str, option: str) -> datetime:
    text = re.sub(r" (\d{2}:?\d{2})$", r"+\1", text)  # "…T10:00:00 09:00": a "+" decoded to a space
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{option}: {text!r} is not an ISO 8601 time", field=option) from None
    if moment.tzinfo is None:
        raise BadRequest(f"{option}: the time {text!r} needs a UTC offset (Z or +09:00)", field=option)
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise BadRequest(f"{option}: {text!r} lies outside the years 1–9999 in UTC", field=option) from None
    return moment


# ── expressions ───────────────────────────────────────────────────────────────────────────


class _Parser:
    """A Pratt parser over one option's tokens."""

    def __init__(self, text: str, option: str) -> None:
        self.option = option
        self.tokens = tokens(text, option)
        self.at = 0

    @property
    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, expected: str) -> BadRequest:
        token = self.peek
        found = "the end" if token.kind == "end" else repr(token.text)
        return BadRequest(
            f"{self.option}: expected {expected} at character {token.at}, found {found}", field=self.option)

    def expect(self, text: str) -> None:
        if self.peek.text != text:
            raise self.fail(repr(text))
        self.take()

    def expression(self, min_binding: int = 0) -> Expr:
        left = self.prefix()
        while self.peek.kind == "name" and BINDING.get(self.peek.text, 0) > min_binding:
            op = self.take().text
            left = Binary(op, left, self.expression(BINDING[op]))
        return left

    def prefix(self) -> Expr:
        token = self.take()
        if token.text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if token.kind == "name" and token.text == "not":
            return Unary("not", self.expression(BINDING["and"]))  # not a eq b → not (a eq b)
        if token.text == "-":
            return Unary("-", self.expression(max(BINDING.values())))
        if token.kind in ("string", "number", "datetime", "date", "time", "geometry"):
            return _literal(token, self.option)
        if token.kind == "name":
            return self.name(token.text)
        self.at -= 1
        raise self.fail("a value, a property or a function")

    def name(self, text: str) -> Expr:
        keyword = {"true": Literal(True, "boolean"), "false": Literal(False, "boolean"), "null": Literal(None, "null")}
        if text in keyword:
            return keyword[text]
        if self.peek.text == "(":
            return Call(text, self.arguments())
        segments = [text]
        while self.peek.text == "/":
            self.take()
            if self.peek.kind != "name":
                raise self.fail("a property name after '/'")
            segments.append(self.take().text)
        return Path(tuple(segments))

    def arguments(self) -> tuple[Expr, ...]:
        self.expect("(")
        args: list[Expr] = []
        if self.peek.text != ")":
            args.append(self.expression())
            while self.peek.text == ",":
                self.take()
                args.append(self.expression())
        self.expect(")")
        return tuple(args)

    def end(self) -> None:
        if self.peek.kind != "end":
            raise self.fail("an operator or the end")


def parse_filter(text: str, option: str = "$filter") -> Expr:
    """The expression tree of a ``$filter`` (18-088 §9.3.3.5)."""
    parser = _Parser(text, option)
    if parser.peek.kind == "end":
        raise parser.fail("an expression")
    expression = parser.expression()
    parser.end()
    return expression


@dataclass(frozen=True, slots=True)
class OrderKey:
    expression: Expr
    descending: bool = False


def parse_orderby(text: str, option: str = "$orderby") -> tuple[OrderKey, ...]:
    """``expr [asc|desc], …`` (18-088 §9.3.3.1); any ``$filter`` expression may be a key."""
    parser = _Parser(text, option)
    keys = []
    while True:
        expression = parser.expression()
        direction = parser.peek.text.lower() if parser.peek.kind == "name" else ""
        if direction in ("asc", "desc"):
            parser.take()
        keys.append(OrderKey(expression, direction == "desc"))
        if parser.peek.text != ",":
            break
        parser.take()
    parser.end()
    return tuple(keys)


# ── $select and $expand ───────────────────────────────────────────────────────────────────

_NAME = re.compile(r"@?[A-Za-z_][\w.]*")


def parse_select(text: str, option: str = "$select") -> tuple[str, ...]:
    """Property and navigation names (18-088 §9.3.2.2); ``@iot.id`` is spelt ``id``."""
    names = [part.strip() for part in text.split(",")]
    for name in names:
        if not _NAME.fullmatch(name):
            raise BadRequest(f"{option}: {name!r} is not a property name", field=option)
    return tuple(dict.fromkeys("id" if n == "@iot.id" else n for n in names))


def split_top_level(text: str, separator: str) -> Iterator[str]:
    """Parts of ``text`` between ``separator``s outside parentheses and quoted strings."""
    depth, quoted, start = 0, False, 0
    for i, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and char == separator:
            yield text[start:i]
            start = i + 1
    yield text[start:]


@dataclass(frozen=True, slots=True)
class Expand:
    """One navigation to expand with its own options, e.g. ``Observations($top=3)``."""

    name: str
    options: QueryOptions


def parse_expand(text: str, option: str = "$expand") -> tuple[Expand, ...]:
    """``Nav[/Nav…][(options)], …`` (18-088 §9.3.2.1); options nest with ``;``."""
    expands: list[Expand] = []
    for part in split_top_level(text, ","):
        expands = _merge(expands, _expand_item(part.strip(), option))
    return tuple(expands)


def _expand_item(text: str, option: str) -> Expand:
    match = re.fullmatch(r"([\w/]+)\s*(?:\((.*)\))?", text, re.DOTALL)
    if match is None or _unbalanced(text):
        raise BadRequest(f"{option}: cannot read {text!r}; expected Nav or Nav($option=…;…)", field=option)
    names, inner = match.group(1).split("/"), match.group(2)
    if not all(names):
        raise BadRequest(f"{option}: empty navigation name in {text!r}", field=option)
    options = _nested_options(inner, f"{option}({names[-1]})") if inner is not None else QueryOptions()
    expand = Expand(names[-1], options)
    for depth in range(len(names) - 2, -1, -1):  # A/B(…) is A($expand=B(…))
        tail = "/".join(names[depth + 1:]) + (f"({inner})" if inner is not None else "")
        expand = Expand(names[depth], QueryOptions(expand=(expand,), raw=(("$expand", tail),)))
    return expand


def _unbalanced(text: str) -> bool:
    depth, quoted = 0, False
    for char in text:
        quoted = quoted != (char == "'")
        if not quoted and char in "()":
            depth += 1 if char == "(" else -1
            if depth < 0:
                return True
    return depth != 0


def _nested_options(text: str, option: str) -> QueryOptions:
    pairs = []
    for part in split_top_level(text, ";"):
        name, equals, value = part.strip().partition("=")
        if not equals:
            raise BadRequest(f"{option}: expected $name=value, found {part.strip()!r}", field=option)
        pairs.append((name.strip(), value.strip()))
    return parse_options(pairs, nested_in=option)


def _merge(expands: list[Expand], new: Expand) -> list[Expand]:
    """``Datastreams,Datastreams/Sensor`` expands Datastreams once, with Sensor inside."""
    for i, known in enumerate(expands):
        if known.name == new.name:
            inner = list(known.options.expand)
            for nested in new.options.expand:
                inner = _merge(inner, nested)
            expands[i] = Expand(known.name, replace(
                known.options, expand=tuple(inner), raw=_joined_expand(known.options.raw, new.options.raw)))
            return expands
    return [*expands, new]


def _joined_expand(raw: tuple[tuple[str, str], ...], more: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    expands = [v for k, v in (*raw, *more) if k == "$expand"]
    kept = tuple((k, v) for k, v in raw if k != "$expand")
    return (*kept, ("$expand", ",".join(expands))) if expands else kept


# ── all options together ──────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """The query options of one request, or of one expanded navigation."""

    filter: Expr | None = None
    orderby: tuple[OrderKey, ...] = ()
    select: tuple[str, ...] | None = None
    expand: tuple[Expand, ...] = ()
    top: int | None = None
    skip: int = 0
    count: bool = False
    result_format: str | None = None
    #: The options as given, so paging links can repeat them.
    raw: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def page_size(self) -> int:
        return min(self.top if self.top is not None else DEFAULT_TOP, MAX_TOP)

    def repeated(self, *, skip: int) -> list[tuple[str, str]]:
        """These options for the page starting at ``skip`` (an ``@iot.nextLink``)."""
        kept = [(k, v) for k, v in self.raw if k not in ("$top", "$skip")]
        return [*kept, ("$top", str(self.page_size)), ("$skip", str(skip))]


OPTIONS = ("$filter", "$orderby", "$select", "$expand", "$top", "$skip", "$count", "$resultFormat")


def parse_options(pairs: Iterable[tuple[str, str]], nested_in: str | None = None) -> QueryOptions:
    """The ``$`` options among ``pairs`` (other parameters are the client's own and ignored).

    An unknown ``$`` option, a repeated one, or a malformed value is refused naming it.
    """
    given: dict[str, str] = {}
    for name, value in pairs:
        if not name.startswith("$"):
            continue
        label = f"{nested_in}.{name}" if nested_in else name
        if name not in OPTIONS or (nested_in and name == "$resultFormat"):
            raise BadRequest(f"unknown query option {name}; this service knows {', '.join(OPTIONS)}", field=label)
        if name in given:
            raise BadRequest(f"the query option {name} is given twice", field=label)
        given[name] = value
    return _options(given, nested_in)


def _options(given: dict[str, str], nested_in: str | None) -> QueryOptions:
    def label(name: str) -> str:
        return f"{nested_in}.{name}" if nested_in else name

    def text(name: str) -> str | None:
        value = given.get(name)
        if value is not None and not value.strip():
            raise BadRequest(f"{name} is empty", field=label(name))
        return value

    values: dict[str, Any] = {}
    if (f := text("$filter")) is not None:
        values["filter"] = parse_filter(f, label("$filter"))
    if (o := text("$orderby")) is not None:
        values["orderby"] = parse_orderby(o, label("$orderby"))
    if (s := text("$select")) is not None:
        values["select"] = parse_select(s, label("$select"))
    if (e := text("$expand")) is not None:
        values["expand"] = parse_expand(e, label("$expand"))
    if (t := text("$top")) is not None:
        values["top"] = _whole_number(t, label("$top"))
    if (k := text("$skip")) is not None:
        values["skip"] = _whole_number(k, label("$skip"))
    if (c := text("$count")) is not None:
        values["count"] = _boolean(c, label("$count"))
    if (r := text("$resultFormat")) is not None:
        if r != "dataArray":
            raise BadRequest(f"$resultFormat must be dataArray, not {r!r}", field="$resultFormat")
        values["result_format"] = r
    return QueryOptions(**values, raw=tuple(given.items()))


def _whole_number(text: str, option: str) -> int:
    if not text.strip().isdigit():
        raise BadRequest(f"{option} must be a whole number ≥ 0, not {text!r}", field=option)
    return int(text)


def _boolean(text: str, option: str) -> bool:
    if text.strip() not in ("true", "false"):
        raise BadRequest(f"{option} must be true or false, not {text!r}", field=option)
    return text.strip() == "true"
