# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Protobuf text format (``config.pbtxt``) without a schema: read, write, and convert from dicts.

Private to this collection: not a public API, may change without notice.

Enough of the text format for Triton model configurations: what this collection writes, and the
auxiliary configurations clearml-serving stores (``--aux-config`` as a raw ``config.pbtxt`` string, or
as a dict parsed from ``key=value`` pairs).

The tree keeps what the text says, in order, without a schema:

- ``Message``: a list of ``(field, value)`` pairs, repeated fields as repeated pairs;
- ``PbList``: the list syntax ``field: [a, b]`` / ``field [ {..}, {..} ]``;
- ``Ident``: a bare identifier (an enum value such as ``KIND_GPU``, or ``true``/``false``);
- ``str``: a quoted string; ``int``/``float``: numbers.

``to_python`` turns a tree into plain dicts for comparisons: a field given once becomes a value, a
repeated field or list syntax a list, ``true``/``false`` booleans and other identifiers strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "ENUM_FIELDS",
    "Ident",
    "Message",
    "PbList",
    "PbtxtError",
    "format_message",
    "format_value",
    "from_python",
    "get_all",
    "get_one",
    "parse_pbtxt",
    "strip_stray_quotes",
    "to_python",
]


class PbtxtError(ValueError):
    """The text is not protobuf text format (message says where)."""


class Ident(str):
    """A bare identifier: an enum value (``TYPE_FP32``) or ``true``/``false``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Ident({str.__repr__(self)})"


class Message(list):
    """Ordered ``(field, value)`` pairs of a message (repeated fields repeat)."""

    __slots__ = ()


class PbList(list):
    """Values written with the list syntax ``[a, b]``."""

    __slots__ = ()


Value = str | int | float | Ident | Message | PbList

# Fields of Triton's model_config.proto whose type is an enum (ModelInstanceGroup.kind,
# ModelInput/ModelOutput/BatchInput/Sequence State/Warmup data_type, ModelInput.format,
# ModelOptimizationPolicy.priority, ModelQueuePolicy.timeout_action, Control.kind, BatchInput.kind,
# BatchOutput.kind, SecondaryDevice.kind). A dict value for one of these that looks like an enum value
# is written bare; every other string is quoted.
ENUM_FIELDS = frozenset({"kind", "data_type", "format", "priority", "timeout_action"})
_ENUM_VALUE = re.compile(r"[A-Z][A-Z0-9_]*\Z")

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?)(?![A-Za-z0-9_]))
  | (?P<ident>[-+]?[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}\[\]<>:,;])
    """,
    re.VERBOSE,
)

_SIMPLE_ESCAPES = {
    "n": b"\n",
    "t": b"\t",
    "r": b"\r",
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "v": b"\v",
    "\\": b"\\",
    "'": b"'",
    '"': b'"',
    "?": b"?",
}


def _unescape(body: str, where: str) -> str:
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[nxt]
            i += 2
        elif nxt in "01234567":
            end = i + 1
            while end < min(len(body), i + 4) and body[end] in "01234567":
                end += 1
            out.append(int(body[i + 1 : end], 8) & 0xFF)
            i = end
        elif nxt in "xX":
            m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2 :])
            if not m:
                raise PbtxtError(f"bad \\x escape in string {where}")
            out.append(int(m.group(), 16))
            i += 2 + len(m.group())
        elif nxt in "uU":
            width = 4 if nxt == "u" else 8
            digits = body[i + 2 : i + 2 + width]
            if not re.fullmatch(f"[0-9a-fA-F]{{{width}}}", digits):
                raise PbtxtError(f"bad \\{nxt} escape in string {where}")
            out += chr(int(digits, 16)).encode()
            i += 2 + width
        else:
            raise PbtxtError(f"unknown escape \\{nxt} in string {where}")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PbtxtError(f"string {where} is not UTF-8: {exc}") from None


def _tokens(text: str) -> Iterator[tuple[str, Any, int, int]]:
    pos = 0
    line = 1
    line_start = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise PbtxtError(
                f"unexpected character {text[pos]!r} at line {line}, column {pos - line_start + 1}"
            )
        kind = m.lastgroup or ""
        raw = m.group()
        col = pos - line_start + 1
        if kind != "ws":
            yield kind, raw, line, col
        newlines = raw.count("\n")
        if newlines:
            line += newlines
            line_start = pos + raw.rindex("\n") + 1
        pos = m.end()


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = list(_tokens(text))
        self.i = 0

    def peek(self) -> tuple[str, Any, int, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self, what: str) -> tuple[str, Any, int, int]:
        tok = self.peek()
        if tok is None:
            raise PbtxtError(f"unexpected end of text, expected {what}")
        self.i += 1
        return tok

    def at(self, punct: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "punct" and tok[1] == punct

    def expect(self, punct: str) -> None:
        kind, raw, line, col = self.next(repr(punct))
        if kind != "punct" or raw != punct:
            raise PbtxtError(f"expected {punct!r} at line {line}, column {col}, found {raw!r}")

    def message(self, close: str | None) -> Message:
        msg = Message()
        while True:
            if close is None and self.peek() is None:
                return msg
            if close is not None and self.at(close):
                self.i += 1
                return msg
            kind, raw, line, col = self.next(
                "a field name" if close is None else f"a field name or {close!r}"
            )
            if kind != "ident" or raw[0] in "+-":
                raise PbtxtError(f"expected a field name at line {line}, column {col}, found {raw!r}")
            if self.at(":"):
                self.i += 1
                value = self.value(raw, allow_message=True)
            elif self.at("{") or self.at("<") or self.at("["):
                value = self.value(raw, allow_message=True)
            else:
                tok = self.peek()
                found = repr(tok[1]) if tok else "end of text"
                raise PbtxtError(f"expected ':' or '{{' after field {raw!r} at line {line}, found {found}")
            msg.append((raw, value))
            if self.at(",") or self.at(";"):
                self.i += 1

    def value(self, field: str, allow_message: bool) -> Value:  # noqa: PLR0911 - one per token kind
        kind, raw, line, col = self.next(f"a value for {field!r}")
        if kind == "punct" and raw in "{<" and allow_message:
            return self.message("}" if raw == "{" else ">")
        if kind == "punct" and raw == "[":
            items = PbList()
            if self.at("]"):
                self.i += 1
                return items
            while True:
                items.append(self.value(field, allow_message=True))
                if self.at(","):
                    self.i += 1
                    continue
                self.expect("]")
                return items
        if kind == "string":
            parts = [_unescape(raw[1:-1], f"at line {line}")]
            while (tok := self.peek()) is not None and tok[0] == "string":  # adjacent strings concatenate
                self.i += 1
                parts.append(_unescape(tok[1][1:-1], f"at line {tok[2]}"))
            return "".join(parts)
        if kind == "number":
            return _number(raw)
        if kind == "ident":
            low = raw.lower().lstrip("+")
            if low in ("inf", "infinity", "-inf", "-infinity", "nan", "-nan"):
                return float(low.replace("infinity", "inf"))
            if raw[0] in "+-":
                raise PbtxtError(f"bad value {raw!r} for {field!r} at line {line}, column {col}")
            return Ident(raw)
        raise PbtxtError(f"unexpected {raw!r} for {field!r} at line {line}, column {col}")


def _number(raw: str) -> int | float:
    text = raw.rstrip("fF") if not raw.lower().startswith(("0x", "-0x", "+0x")) else raw
    if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", text):
        return int(text, 16)
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    return float(text)


def parse_pbtxt(text: str) -> Message:
    """Parse protobuf text format into a ``Message`` tree (raises ``PbtxtError``)."""
    return _Parser(text).message(None)


def get_all(msg: Message, field: str) -> list[Value]:
    """Every value of ``field`` (repeated pairs and list syntax flattened), in order."""
    out: list[Value] = []
    for key, value in msg:
        if key == field:
            out.extend(value if isinstance(value, PbList) else [value])
    return out


def get_one(msg: Message, field: str, default: Any = None) -> Any:
    """The last value of a singular ``field`` (protobuf: the last one wins), else ``default``."""
    values = get_all(msg, field)
    return values[-1] if values else default


def to_python(value: Value) -> Any:
    """Plain data for comparisons: dicts, lists, str/int/float/bool (see the module docstring)."""
    if isinstance(value, Message):
        out: dict[str, Any] = {}
        as_list: set[str] = set()  # keys whose value is a list (repeated, or list syntax)
        for key, item in value:
            converted = to_python(item)
            if key in out and key not in as_list:
                out[key] = [out[key]]
                as_list.add(key)
            if isinstance(item, PbList):
                out.setdefault(key, []).extend(converted)
                as_list.add(key)
            elif key in as_list:
                out[key].append(converted)
            else:
                out[key] = converted
        return out
    if isinstance(value, PbList):
        return [to_python(v) for v in value]
    if isinstance(value, Ident):
        if value in ("true", "True", "t"):
            return True
        if value in ("false", "False", "f"):
            return False
        return str(value)
    return value


def strip_stray_quotes(value: str) -> str:
    """``'"onnxruntime_onnx"'`` -> ``'onnxruntime_onnx'``.

    clearml-serving's CLI escapes the quotes of ``--aux-config platform="onnxruntime_onnx"`` before
    parsing it as HOCON, so the stored value carries the quotes (and sometimes their backslashes).
    """
    while True:
        stripped = value.strip()
        for quote in ('\\"', "\\'", '"', "'"):
            if len(stripped) >= 2 * len(quote) and stripped.startswith(quote) and stripped.endswith(quote):
                stripped = stripped[len(quote) : -len(quote)]
                break
        else:
            return stripped
        value = stripped


def _scalar_from_python(field: str, value: Any) -> Value:
    if isinstance(value, bool):
        return Ident("true" if value else "false")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        value = strip_stray_quotes(value)
        if field in ENUM_FIELDS and _ENUM_VALUE.match(value):
            return Ident(value)
        if value in ("true", "false"):
            return Ident(value)
        return value
    raise PbtxtError(f"{field}: unsupported value {value!r} ({type(value).__name__})")


def _listify(value: Any) -> Any:
    """HOCON dotted keys give ``{"0": {...}, "1": {...}}``: turn such dicts into lists (by index)."""
    if isinstance(value, Mapping) and value and all(isinstance(k, str) and k.isdigit() for k in value):
        return [value[k] for k in sorted(value, key=int)]
    return value


def from_python(data: Mapping[str, Any], *, sort_keys: bool = True) -> Message:
    """A dict (clearml-serving's parsed ``--aux-config``) as a ``Message``.

    Keys are sorted unless ``sort_keys`` is false (message field order carries no meaning), ``None``
    values are dropped, stray quotes are stripped from strings, enum-looking strings of enum fields
    and ``true``/``false`` become identifiers, dicts with only numeric keys become lists.
    """
    msg = Message()
    keys = sorted(data, key=str) if sort_keys else list(data)
    for key in keys:
        field = str(key)
        value = _listify(data[key])
        if value is None:
            continue
        if isinstance(value, Mapping):
            msg.append((field, from_python(value, sort_keys=sort_keys)))
        elif isinstance(value, (list, tuple)):
            items = PbList()
            for raw in value:
                item = _listify(raw)
                if isinstance(item, Mapping):
                    items.append(from_python(item, sort_keys=sort_keys))
                elif isinstance(item, (list, tuple)):
                    raise PbtxtError(f"{field}: nested lists are not protobuf text format")
                else:
                    items.append(_scalar_from_python(field, item))
            msg.append((field, items))
        else:
            msg.append((field, _scalar_from_python(field, value)))
    return msg


def _quote(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_value(value: Value) -> str:  # noqa: PLR0911 - one per scalar type
    """One scalar in text format (strings quoted and escaped, identifiers bare)."""
    if isinstance(value, Ident):
        return str(value)
    if isinstance(value, bool):  # not produced by the parser; accepted from callers
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    raise PbtxtError(f"cannot write {value!r} ({type(value).__name__}) as a scalar")


def _format_pair(key: str, value: Value, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, Message):
        out.append(f"{pad}{key} {{")
        _format_body(value, indent + 1, out)
        out.append(f"{pad}}}")
    elif isinstance(value, PbList):
        if any(isinstance(v, Message) for v in value):
            if not all(isinstance(v, Message) for v in value):
                raise PbtxtError(f"{key}: a list mixes messages and scalars")
            out.append(f"{pad}{key} [")
            for n, item in enumerate(value):
                out.append(f"{pad}  {{")
                _format_body(item, indent + 2, out)  # type: ignore[arg-type]
                out.append(f"{pad}  }}{',' if n + 1 < len(value) else ''}")
            out.append(f"{pad}]")
        else:
            inner = ", ".join(format_value(v) for v in value)
            out.append(f"{pad}{key}: [ {inner} ]" if inner else f"{pad}{key}: []")
    else:
        out.append(f"{pad}{key}: {format_value(value)}")


def _format_body(msg: Message, indent: int, out: list[str]) -> None:
    for key, value in msg:
        _format_pair(key, value, indent, out)


def format_message(msg: Message) -> str:
    """A ``Message`` as text format, two-space indented, one field per line, ending with a newline."""
    out: list[str] = []
    _format_body(msg, 0, out)
    return "\n".join(out) + "\n" if out else ""
