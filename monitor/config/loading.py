"""Load riskmon's TOML configuration into frozen, validated objects.

:func:`load_config` runs four steps; each raises :class:`~monitor.errors.ConfigError` with a
message that starts with the file path and names the key, e.g.
``config/x.toml: [[rules]][2] op: expected one of ">", ">=", "<", "<=", got "!="``.

1. Read and parse the TOML file.
2. Apply ``RISKMON_<SECTION>__<KEY>`` environment overrides to the table sections.
3. Convert with msgspec into the Structs below (types, ranges, unknown keys, durations).
4. Cross-field checks: unique names, known symbols, rule metrics and labels.

The schema is in :mod:`monitor.config.schema`, the cross-field checks in
:mod:`monitor.config.checks`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import msgspec
import msgspec.inspect as mi

from monitor.config.checks import Key, Problem, find_problems
from monitor.config.checks import show_value as _show
from monitor.config.durations import DURATION_EXPECTED, Duration, PositiveDuration, parse_duration
from monitor.config.schema import ENV_PREFIX, Config, Labels
from monitor.errors import ConfigError

_CONFIG_TYPE = cast(mi.StructType, mi.type_info(Config))
_SECTIONS = {f.encode_name: f.type for f in _CONFIG_TYPE.fields if f.name != "source"}
_TABLE_SECTIONS = {k: t for k, t in _SECTIONS.items() if isinstance(t, mi.StructType)}
_ARRAY_SECTIONS = frozenset(k for k, t in _SECTIONS.items() if isinstance(t, mi.VarTupleType))
_ABSENT = object()


class _ProblemError(Exception):
    """Stops loading at the first problem; :func:`load_config` adds the file path."""

    def __init__(self, where: Key | str, detail: str) -> None:
        super().__init__(where, detail)
        self.problem = Problem(where, detail)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load, override and validate a configuration file.

    Args:
        path: the TOML file.
        environ: environment holding ``RISKMON_<SECTION>__<KEY>`` overrides; ``os.environ`` when
            None. The value is read as a TOML value (``[0.95, 0.99]``, ``4``), else as a string.

    Returns:
        The frozen configuration, with ``source`` set to ``path``.

    Raises:
        ConfigError: the file is missing, unreadable or not TOML, or a key or override is
            unknown, has the wrong type or an invalid value. The message starts with the path.
    """
    source = os.fspath(path)
    raw = _read_toml(source)
    overrides: dict[Key, str] = {}
    try:
        _check_sections(raw)
        _apply_overrides(raw, os.environ if environ is None else environ, overrides)
        config = _convert(raw)
        problem = next(find_problems(config), None)
    except _ProblemError as exc:
        problem = exc.problem
    if problem is not None:
        raise ConfigError(f"{source}: {_where(problem.where, overrides)}: {problem.detail}")
    _check_inline_secrets(source, config)
    risk = msgspec.structs.replace(config.risk, confidence=tuple(sorted(config.risk.confidence)))
    return msgspec.structs.replace(config, risk=risk, source=source)


def _check_inline_secrets(source: str, config: Config) -> None:
    """A secret written in the file is only accepted when others cannot read the file."""
    inline = [i for i, sink in enumerate(config.sinks) if sink.secret is not None]
    if inline and os.stat(source).st_mode & 0o004:
        raise ConfigError(
            f"{source}: [[sinks]][{inline[0]}] secret: the file is readable by everyone; "
            "use secret_env or secret_file, or chmod o-r the file"
        )


def _read_toml(source: str) -> dict[str, Any]:
    try:
        with open(source, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found; expected a TOML config file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 (byte {exc.start}); expected TOML text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc


def _check_sections(raw: Mapping[str, object]) -> None:
    for name in raw:
        if name not in _SECTIONS:
            expected = ", ".join(_section_header(s) for s in _SECTIONS)
            raise _ProblemError((name,), f"unknown section; expected one of {expected}")


def _section_header(name: str) -> str:
    return f"[[{name}]]" if name in _ARRAY_SECTIONS else f"[{name}]"


def _apply_overrides(
    raw: dict[str, Any], environ: Mapping[str, str], applied: dict[Key, str]
) -> None:
    for variable in sorted(environ):
        if not variable.upper().startswith(ENV_PREFIX) or "__" not in variable:
            continue  # other RISKMON_ variables (secrets, log level) belong to other modules
        section, key = _override_target(variable)
        table = raw.setdefault(section, {})
        if isinstance(table, dict):  # else conversion reports the section's wrong type
            table[key] = _parse_override(environ[variable])
        applied[(section, key)] = variable


def _override_target(variable: str) -> tuple[str, str]:
    section, _, key = variable[len(ENV_PREFIX) :].lower().partition("__")
    tables = ", ".join(_TABLE_SECTIONS)
    if section in _ARRAY_SECTIONS:
        detail = f"[[{section}]] cannot be overridden (array of tables); expected one of {tables}"
        raise _ProblemError(variable, detail)
    if section not in _TABLE_SECTIONS:
        raise _ProblemError(variable, f'unknown section "{section}"; expected one of {tables}')
    keys = [f.encode_name for f in _TABLE_SECTIONS[section].fields]
    if key not in keys:
        detail = f'unknown key "{key}" in [{section}]; expected one of {", ".join(keys)}'
        raise _ProblemError(variable, detail)
    return section, key


def _parse_override(text: str) -> object:
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text  # bare words and durations such as 10m
    return parsed["v"] if len(parsed) == 1 else text


def _convert(raw: dict[str, Any]) -> Config:
    rules = raw.get("rules")
    for rule in rules if isinstance(rules, list) else ():
        if isinstance(rule, dict) and "threshold" in rule:
            rule.setdefault("resolve_threshold", rule["threshold"])
    try:
        return msgspec.convert(raw, Config, dec_hook=_decode_custom)
    except msgspec.ValidationError as exc:
        raise _from_validation_error(str(exc), raw) from exc


def _decode_custom(type_: type, obj: object) -> object:
    if type_ is Duration or type_ is PositiveDuration:
        return _decode_duration(type_, obj)
    if type_ is Labels:
        if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
            expected = 'expected a table of strings like { symbol = "BTCUSDT" }'
            raise ValueError(f"{expected}, got {_show(obj)}")
        return Labels(sorted(obj.items()))
    raise TypeError(f"no decoder for config type {type_!r}")  # only our own types reach here


def _decode_duration(type_: type[Duration], obj: object) -> Duration:
    if not isinstance(obj, str):
        raise ValueError(f"{DURATION_EXPECTED}, got {_show(obj)}")
    seconds = parse_duration(obj)
    if type_ is PositiveDuration and seconds <= 0:
        expected = DURATION_EXPECTED.replace("a duration", "a positive duration")
        raise ValueError(f"{expected}, got {_show(obj)}")
    return type_(seconds)


_AT = re.compile(r"(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_PATH_TOKEN = re.compile(r"\.(?P<name>[^.\[]+)|\[(?P<index>\d+)\]")
_UNKNOWN_KEY = re.compile(r"Object contains unknown field `(?P<key>[^`]+)`")
_MISSING_KEY = re.compile(r"Object missing required field `(?P<key>[^`]+)`")
_TYPE_NAME = re.compile(r"`(?P<name>\w+(?: \| \w+)*)`")
_TYPE_WORDS = {"object": "a table", "array": "an array", "str": "a string", "int": "an integer"}
_TYPE_WORDS |= {"float": "a number", "bool": "a boolean"}


def _from_validation_error(text: str, raw: Mapping[str, object]) -> _ProblemError:
    match = _AT.fullmatch(text)
    message, path = (match["message"], match["path"] or "") if match else (text, "")
    key: Key = tuple(
        m["name"] if m["name"] is not None else int(m["index"]) for m in _PATH_TOKEN.finditer(path)
    )
    if unknown := _UNKNOWN_KEY.fullmatch(message):
        allowed = ", ".join(_keys_at(key))
        return _ProblemError((*key, unknown["key"]), f"unknown key; expected one of {allowed}")
    if missing := _MISSING_KEY.fullmatch(message):
        return _ProblemError(
            (*key, missing["key"]), "missing required " + ("key" if key else "section")
        )
    return _ProblemError(key, _with_value(_expected(message, key), _value_at(raw, key)))


def _expected(message: str, key: Key) -> str:
    node = _type_at(key)
    if isinstance(node, mi.LiteralType):
        return "expected one of " + ", ".join(_show(v) for v in node.values)
    if isinstance(node, mi.EnumType):
        return "expected one of " + ", ".join(_show(m.value) for m in node.cls)
    if message.startswith("Expected `"):  # msgspec's own wording; our dec_hook's is kept as is
        head = message.split(", got ")[0]
        return "e" + _TYPE_NAME.sub(lambda m: _type_words(m["name"]), head)[1:]
    return message


def _type_words(names: str) -> str:
    """``array | null`` -> "an array": TOML has no null, an optional key is simply left out."""
    kinds = [n for n in names.split(" | ") if n != "null"] or ["null"]
    return " or ".join(_TYPE_WORDS.get(n, n) for n in kinds)


def _with_value(detail: str, value: object) -> str:
    if ", got " in detail or value is _ABSENT:
        return detail
    return f"{detail}, got {_show(value)}"


def _type_at(key: Key) -> mi.Type | None:
    node: mi.Type = _CONFIG_TYPE
    for token in key:
        if isinstance(node, mi.StructType) and isinstance(token, str):
            found = [f.type for f in node.fields if f.encode_name == token]
            if not found:
                return None
            node = found[0]
        elif isinstance(node, mi.VarTupleType | mi.ListType) and isinstance(token, int):
            node = node.item_type
        elif isinstance(node, mi.TupleType) and isinstance(token, int):
            node = node.item_types[token]
        else:
            return None
    return node


def _keys_at(key: Key) -> list[str]:
    node = _type_at(key)
    fields = node.fields if isinstance(node, mi.StructType) else ()
    return [f.encode_name for f in fields if key or f.name != "source"]


def _value_at(raw: object, key: Key) -> object:
    value: Any = raw
    for token in key:
        try:
            value = value[token]
        except (KeyError, IndexError, TypeError):
            return _ABSENT
    return value


def _where(where: Key | str, overrides: Mapping[Key, str]) -> str:
    if isinstance(where, str):
        return f"environment variable {where}"
    if not where:
        return "(top level)"
    section, rest = str(where[0]), list(where[1:])
    head = _section_header(section)
    if section in _ARRAY_SECTIONS and rest and isinstance(rest[0], int):
        head += f"[{rest.pop(0)}]"
    tail = "".join(f"[{t}]" if isinstance(t, int) else f".{t}" for t in rest).removeprefix(".")
    label = f"{head} {tail}" if tail else head
    variable = overrides.get(where[:2])
    return f"{label} (from {variable})" if variable else label
