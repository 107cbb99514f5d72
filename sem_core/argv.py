"""A model file's command line split in two: what Hydra handles (flags, ``hydra.*``,
``sem.*``, config groups) and the overrides that address the rows of ``@ex.configs``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sem_core.errors import ConfigError
from sem_core.plan import OverrideKind, RowOverride, format_key, split_quoted_override

if TYPE_CHECKING:
    from hydra.core.override_parser.overrides_parser import OverridesParser


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[RowOverride]]:
    """Separate the overrides that address rows (selection, ``++``, ``+NEW``, ``~``) from
    those Hydra handles (flags, ``hydra.*``, ``sem.*``, config groups).

    Hydra's own argument parser (``hydra._internal.utils.get_args_parser``) finds the
    overrides among the flags, so every flag Hydra accepts passes through unchanged."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed_args, _unknown = get_args_parser().parse_known_args(list(argv))
    candidates = list(parsed_args.overrides or [])
    if not candidates:
        return list(argv), []
    parser = OverridesParser.create()
    row_overrides: list[RowOverride] = []
    taken: list[str] = []
    # the predecessor tool's way to run rows by position: `python m_model.py 0 3` is `+order_id=0,3`
    positions = [text for text in candidates if text.isascii() and text.isdigit()]
    if positions:
        values = tuple(dict.fromkeys(int(text) for text in positions))
        row_overrides.append(RowOverride(kind="select", key="order_id", values=values, text=" ".join(positions)))
        taken += positions
        candidates = [text for text in candidates if text not in positions]
    for text in candidates:
        override = _row_override(parser, text)
        if override is not None:
            row_overrides.append(override)
            taken.append(text)
    remaining = list(argv)
    for text in taken:
        remaining.remove(text)
    return remaining, row_overrides


def _row_override(parser: OverridesParser, text: str) -> RowOverride | None:
    """The row override ``text`` stands for; None if it is Hydra's (``hydra.*``, ``sem.*``, a
    config group or a package)."""
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import OverrideParseException

    # a row key with dots, spaces or other characters is typed in quotes ("a.b"=1), which
    # Hydra's grammar does not accept: Hydra parses the rest with a stand-in key
    quoted = split_quoted_override(text)
    try:
        (ov,) = parser.parse_overrides([text if quoted is None else f"{quoted[0]}sem_key{quoted[2]}"])
    except OverrideParseException as exc:
        # Hydra's message spans three lines (a caret under the text, a link): kept to one
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot parse override {text!r}: {first} (grammar: https://hydra.cc/docs/advanced/override_grammar/basic; "
            "a value with spaces or other characters goes in quotes: key='a b')"
        ) from None
    key = ov.key_or_group if quoted is None else format_key(quoted[1])
    if quoted is None and ("/" in key or ov.package is not None) or key.split(".")[0] in ("hydra", "sem"):
        return None
    values: tuple
    if ov.is_sweep_override():
        if not ov.is_discrete_sweep():
            raise ConfigError(f"{text}: only lists and range() sweeps are supported for row keys")
        values = tuple(ov.sweep_iterator())
    else:
        values = (ov.value(),)
    kind: OverrideKind
    if key == "order_id":
        if ov.type == OverrideType.DEL:
            raise ConfigError(f"{text}: order_id cannot be removed")
        kind = "select"
    elif ov.type == OverrideType.CHANGE:
        kind = "select"
    elif ov.type == OverrideType.FORCE_ADD:
        kind = "set"
    elif ov.type == OverrideType.ADD:
        kind = "add"
    else:
        kind = "delete"
    return RowOverride(kind=kind, key=key, values=values, text=text)
