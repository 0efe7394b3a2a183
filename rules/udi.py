"""Parse and compose unique device identifiers (GS1 and HIBC); see shared DOMAIN §3.

Positions in errors are 0-based indexes into the string that was passed in, so a
caller can point at the offending character of a scanned label.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

GS = "\x1d"
"""ASCII group separator: FNC1 in scanner output, ends a variable-length field."""

HEALTHCARE_DAY00_CUTOFF = date(2025, 1, 1)
"""From this date an expiry with day 00 is invalid for regulated healthcare (DOMAIN §3)."""

GTIN_LENGTHS = frozenset({8, 12, 13, 14})

# GS1 AI encodable character set 82 (GS1 General Specifications §7.11, figure 7.11-1).
_CSET82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
# Code 39 character values used by the HIBC mod-43 check character.
_MOD43 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%"
# A bracketed AI inside human-readable text; variable data ends where the next one starts.
_HUMAN_AI = re.compile(r"\((\d{2,4})\)")
# AIM symbology identifiers a scanner may prefix (]d2 Data Matrix, ]C1 GS1-128, ...).
_SYMBOLOGY_ID = re.compile(r"\][A-Za-z][0-9A-Za-z]")

UdiFormat = Literal["gs1", "hibc"]
UdiForm = Literal["human", "scanner"]
_Kind = Literal["digits", "date", "text"]


class UdiError(ValueError):
    """A UDI that cannot be trusted; names the application identifier and the position."""

    def __init__(self, message: str, *, ai: str | None, position: int) -> None:
        self.ai = ai
        self.position = position
        self.detail = message
        where = f"AI ({ai})" if ai and ai != "HIBC" else (ai or "UDI")
        super().__init__(f"{where} at position {position}: {message}")


class CheckDigitError(UdiError):
    """The data reads, but its GS1 check digit or HIBC check character is wrong."""


@dataclass(frozen=True)
class Udi:
    """The data carried by one UDI. GTINs are always 14 digits."""

    format: UdiFormat
    gtin: str | None = None
    lot: str | None = None
    serial: str | None = None
    expiry: date | None = None
    production_date: date | None = None
    sscc: str | None = None
    additional_id: str | None = None
    hibc_labeler: str | None = None
    hibc_product: str | None = None
    hibc_unit_of_measure: int | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _AiSpec:
    ai: str
    field: str
    kind: _Kind
    length: int
    """Exact length when ``fixed``, else the maximum length."""
    fixed: bool


_AI_SPECS: dict[str, _AiSpec] = {
    spec.ai: spec
    for spec in (
        _AiSpec("00", "sscc", "digits", 18, fixed=True),
        _AiSpec("01", "gtin", "digits", 14, fixed=True),
        _AiSpec("11", "production_date", "date", 6, fixed=True),
        _AiSpec("17", "expiry", "date", 6, fixed=True),
        _AiSpec("10", "lot", "text", 20, fixed=False),
        _AiSpec("21", "serial", "text", 20, fixed=False),
        _AiSpec("240", "additional_id", "text", 30, fixed=False),
    )
}
# Composition order: predefined-length AIs first so that only variable ones need FNC1.
_BUILD_ORDER = ("00", "01", "11", "17", "10", "21", "240")


# --- check digits ---------------------------------------------------------------------


def gtin_check_digit(body: str) -> str:
    """Return the GS1 mod-10 check digit for ``body`` (the digits before the check digit)."""
    if not body.isdigit() or not body.isascii():
        raise ValueError(f"GS1 key body must be digits, got {body!r}")
    # Weights 3, 1, 3, ... from the rightmost body digit (DOMAIN §3).
    total = sum(
        int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(reversed(body))
    )
    return str((10 - total % 10) % 10)


def is_valid_gtin(gtin: str) -> bool:
    """True for a GTIN-8/12/13/14 whose check digit is right."""
    return (
        gtin.isascii()
        and gtin.isdigit()
        and len(gtin) in GTIN_LENGTHS
        and gtin_check_digit(gtin[:-1]) == gtin[-1]
    )


def normalize_gtin(gtin: str) -> str:
    """Return ``gtin`` as 14 digits, left-padded with zeros; raise UdiError if invalid."""
    _check_gs1_key(gtin, ai="01", lengths=GTIN_LENGTHS, offset=0)
    return gtin.zfill(14)


def hibc_check_character(data: str) -> str:
    """Return the HIBC mod-43 check character for ``data`` (including the leading ``+``)."""
    try:
        return _MOD43[sum(_MOD43.index(char) for char in data) % 43]
    except ValueError:
        raise ValueError(f"{data!r} has characters outside the HIBC set") from None


def _check_gs1_key(value: str, *, ai: str, lengths: frozenset[int], offset: int) -> None:
    for index, char in enumerate(value):
        if not ("0" <= char <= "9"):
            raise UdiError(f"{char!r} is not a digit", ai=ai, position=offset + index)
    if len(value) not in lengths:
        expected = "/".join(str(length) for length in sorted(lengths))
        raise UdiError(f"expected {expected} digits, found {len(value)}", ai=ai, position=offset)
    expected_check = gtin_check_digit(value[:-1])
    if value[-1] != expected_check:
        raise CheckDigitError(
            f"check digit is {value[-1]}, expected {expected_check}",
            ai=ai,
            position=offset + len(value) - 1,
        )


# --- dates ----------------------------------------------------------------------------


def expand_two_digit_year(yy: int, reference_date: date) -> int:
    """Four-digit year for ``yy`` by the GS1 century rule relative to ``reference_date``."""
    # GS1 General Specifications §7.12, quoted in DOMAIN §3.
    century = reference_date.year - reference_date.year % 100
    difference = yy - reference_date.year % 100
    if difference >= 51:
        return century - 100 + yy
    if difference > -50:
        return century + yy
    return century + 100 + yy


def _yymmdd(value: str, *, ai: str, offset: int, reference_date: date) -> tuple[date, bool]:
    """Return the date and whether the day was 00 (meaning the last day of the month)."""
    year = expand_two_digit_year(int(value[0:2]), reference_date)
    month, day = int(value[2:4]), int(value[4:6])
    if not 1 <= month <= 12:
        raise UdiError(f"month {value[2:4]} is not 01-12", ai=ai, position=offset + 2)
    last_day = calendar.monthrange(year, month)[1]
    if day > last_day:
        raise UdiError(
            f"day {value[4:6]} does not exist in {year}-{month:02d}", ai=ai, position=offset + 4
        )
    return date(year, month, day or last_day), day == 0


# --- GS1 ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Element:
    spec: _AiSpec
    value: str
    position: int


def parse_udi(text: str, *, reference_date: date, strict: bool = False) -> Udi:
    """Parse a GS1 UDI (human-readable or scanner form) or recognise and parse HIBC.

    ``reference_date`` resolves two-digit years and the day-00 cut-over; pass the
    decision's ``as_of`` so that re-evaluating it gives the same answer. With
    ``strict`` a day-00 expiry after the cut-over is an error instead of a warning.
    """
    start = len(text) - len(text.lstrip())
    text = text.rstrip()
    if (match := _SYMBOLOGY_ID.match(text, start)) is not None:
        start = match.end()
    if start >= len(text):
        raise UdiError("empty UDI", ai=None, position=start)
    if text[start] == "+":
        return _parse_hibc(text, start, reference_date)
    if text[start] == GS:
        start += 1  # leading FNC1 as some scanners transmit it
    if text.startswith("(", start):
        elements = _split_human(text, start)
    else:
        elements = _split_scanner(text, start)
    return _gs1_udi(elements, reference_date=reference_date, strict=strict)


def _lookup_ai(ai: str, position: int) -> _AiSpec:
    spec = _AI_SPECS.get(ai)
    if spec is None:
        raise UdiError("unknown or unsupported application identifier", ai=ai, position=position)
    return spec


def _split_human(text: str, start: int) -> Iterator[_Element]:
    position = start
    while position < len(text):
        match = _HUMAN_AI.match(text, position)
        if match is None:
            raise UdiError("expected a bracketed AI such as (01)", ai=None, position=position)
        spec = _lookup_ai(match.group(1), position)
        following = _HUMAN_AI.search(text, match.end())
        end = following.start() if following else len(text)
        yield _Element(spec, text[match.end() : end], match.end())
        position = end


def _split_scanner(text: str, start: int) -> Iterator[_Element]:
    position = start
    while position < len(text):
        two, three = text[position : position + 2], text[position : position + 3]
        if two in _AI_SPECS:
            spec = _AI_SPECS[two]
        else:
            spec = _lookup_ai(three if three in _AI_SPECS else two, position)
        value_start = position + len(spec.ai)
        if spec.fixed:
            end = min(value_start + spec.length, len(text))
            if (separator := text.find(GS, value_start, end)) != -1:
                end = separator  # too short; reported by the length check
            position = end + 1 if text.startswith(GS, end) else end  # tolerate a needless FNC1
        else:
            separator = text.find(GS, value_start)
            end = len(text) if separator == -1 else separator
            position = end + 1
        yield _Element(spec, text[value_start:end], value_start)


def _gs1_udi(elements: Iterator[_Element], *, reference_date: date, strict: bool) -> Udi:
    fields: dict[str, str | date] = {}
    warnings: list[str] = []
    for element in elements:
        spec, value, offset = element.spec, element.value, element.position
        if spec.field in fields:
            raise UdiError("appears twice", ai=spec.ai, position=offset)
        if spec.kind == "text":
            fields[spec.field] = _checked_text(value, spec, offset)
            continue
        if len(value) != spec.length:
            raise UdiError(
                f"expected {spec.length} digits, found {len(value)}", ai=spec.ai, position=offset
            )
        if spec.kind == "digits":
            _check_gs1_key(value, ai=spec.ai, lengths=frozenset({spec.length}), offset=offset)
            fields[spec.field] = value
            continue
        if not (value.isascii() and value.isdigit()):
            raise UdiError("a YYMMDD date must be digits", ai=spec.ai, position=offset)
        day, day_was_00 = _yymmdd(value, ai=spec.ai, offset=offset, reference_date=reference_date)
        if day_was_00 and spec.ai == "17" and reference_date >= HEALTHCARE_DAY00_CUTOFF:
            message = (
                f"expiry day 00 (read as {day.isoformat()}) is not allowed for regulated "
                f"healthcare from {HEALTHCARE_DAY00_CUTOFF.isoformat()}"
            )
            if strict:
                raise UdiError(message, ai=spec.ai, position=offset + 4)
            warnings.append(f"AI (17) at position {offset + 4}: {message}")
        fields[spec.field] = day
    return Udi(format="gs1", warnings=tuple(warnings), **fields)  # type: ignore[arg-type]


def _checked_text(value: str, spec: _AiSpec, offset: int) -> str:
    if not value:
        raise UdiError("is empty", ai=spec.ai, position=offset)
    if len(value) > spec.length:
        raise UdiError(
            f"is {len(value)} characters, at most {spec.length} allowed",
            ai=spec.ai,
            position=offset + spec.length,
        )
    for index, char in enumerate(value):
        if char not in _CSET82:
            raise UdiError(
                f"{char!r} is outside the GS1 character set", ai=spec.ai, position=offset + index
            )
    return value


def build_udi(
    *,
    gtin: str | None = None,
    lot: str | None = None,
    serial: str | None = None,
    expiry: date | None = None,
    production_date: date | None = None,
    sscc: str | None = None,
    additional_id: str | None = None,
    form: UdiForm = "human",
) -> str:
    """Compose a GS1 UDI; ``form`` is "human" (``(01)…(17)…``) or "scanner" (GS-separated).

    Dates are written as YYMMDD, so they parse back to the same date when they lie
    within the century window of the parser's reference date.
    """
    values: dict[str, str] = {}
    if sscc is not None:
        _check_gs1_key(sscc, ai="00", lengths=frozenset({18}), offset=0)
        values["00"] = sscc
    if gtin is not None:
        values["01"] = normalize_gtin(gtin)
    if production_date is not None:
        values["11"] = production_date.strftime("%y%m%d")
    if expiry is not None:
        values["17"] = expiry.strftime("%y%m%d")
    for ai, text in (("10", lot), ("21", serial), ("240", additional_id)):
        if text is not None:
            _checked_text(text, _AI_SPECS[ai], 0)
            if form == "human" and _HUMAN_AI.search(text):
                raise UdiError(
                    "contains a bracketed number, ambiguous in human-readable form",
                    ai=ai,
                    position=0,
                )
            values[ai] = text
    if not values:
        raise UdiError("nothing to encode", ai=None, position=0)
    ordered = [(ai, values[ai]) for ai in _BUILD_ORDER if ai in values]
    if form == "human":
        return "".join(f"({ai}){value}" for ai, value in ordered)
    parts: list[str] = []
    for index, (ai, value) in enumerate(ordered):
        parts.append(ai + value)
        if not _AI_SPECS[ai].fixed and index < len(ordered) - 1:
            parts.append(GS)
    return "".join(parts)


# --- HIBC -----------------------------------------------------------------------------


def _parse_hibc(text: str, start: int, reference_date: date) -> Udi:
    """Parse HIBC LIC primary and secondary data (HIBC LIC standard 2.6)."""
    for index in range(start, len(text)):
        if text[index] not in _MOD43:
            raise UdiError(f"{text[index]!r} is not an HIBC character", ai="HIBC", position=index)
    if len(text) - start < 3:
        raise UdiError("too short", ai="HIBC", position=start)
    data, check = text[start:-1], text[-1]
    if hibc_check_character(data) != check:
        raise CheckDigitError(
            f"check character is {check!r}, expected {hibc_check_character(data)!r}",
            ai="HIBC",
            position=len(text) - 1,
        )
    body_start = start + 1
    body = text[body_start:-1]
    if body[0].isalpha():
        primary, _, secondary = body.partition("/")
        fields = _hibc_primary(primary, body_start)
        if secondary:
            fields.update(_hibc_secondary(secondary, body_start + len(primary) + 1, reference_date))
        return Udi(format="hibc", **fields)  # type: ignore[arg-type]
    # Secondary data alone ends with a link character that ties it to a separate primary.
    fields = _hibc_secondary(body[:-1], body_start, reference_date)
    fields["warnings"] = (
        *fields["warnings"],  # type: ignore[misc]
        "HIBC secondary data without primary; link character not verified",
    )
    return Udi(format="hibc", **fields)  # type: ignore[arg-type]


def _hibc_primary(primary: str, offset: int) -> dict[str, object]:
    labeler, product, unit = primary[:4], primary[4:-1], primary[-1:]
    if len(labeler) != 4 or not labeler.isalnum():
        raise UdiError("labeler code must be 4 letters or digits", ai="HIBC", position=offset)
    if not 1 <= len(product) <= 18 or not product.isalnum():
        raise UdiError(
            "product code must be 1-18 letters or digits", ai="HIBC", position=offset + 4
        )
    if not unit.isdigit():
        raise UdiError(
            "unit of measure must be a digit", ai="HIBC", position=offset + len(primary) - 1
        )
    return {
        "hibc_labeler": labeler,
        "hibc_product": product,
        "hibc_unit_of_measure": int(unit),
    }


_HibcDate = Callable[[str, date], date]


def _hibc_mmyy(digits: str, reference: date) -> date:
    year = expand_two_digit_year(int(digits[2:4]), reference)
    month = int(digits[0:2])
    return date(year, month, calendar.monthrange(year, month)[1])


def _hibc_mmddyy(digits: str, reference: date) -> date:
    year = expand_two_digit_year(int(digits[4:6]), reference)
    return date(year, int(digits[0:2]), int(digits[2:4]))


def _hibc_yymmdd(digits: str, reference: date) -> date:
    year = expand_two_digit_year(int(digits[0:2]), reference)
    return date(year, int(digits[2:4]), int(digits[4:6]))


def _hibc_yyjjj(digits: str, reference: date) -> date:
    year = expand_two_digit_year(int(digits[0:2]), reference)
    day_of_year = int(digits[2:5])
    if not 1 <= day_of_year <= (366 if calendar.isleap(year) else 365):
        raise ValueError(f"day of year {day_of_year} does not exist in {year}")
    return date(year, 1, 1) + timedelta(days=day_of_year - 1)


# flag -> (characters consumed including the flag, digits handed to the parser, parser);
# flags 0 and 1 are the first digit of MMYY, flag 7 means no date.
_HIBC_DATE_FORMATS: dict[str, tuple[int, slice, _HibcDate | None]] = {
    "0": (4, slice(0, 4), _hibc_mmyy),
    "1": (4, slice(0, 4), _hibc_mmyy),
    "2": (7, slice(1, 7), _hibc_mmddyy),
    "3": (7, slice(1, 7), _hibc_yymmdd),
    "4": (9, slice(1, 7), _hibc_yymmdd),  # trailing HH ignored: expiry is a day
    "5": (6, slice(1, 6), _hibc_yyjjj),
    "6": (8, slice(1, 6), _hibc_yyjjj),
    "7": (1, slice(1, 1), None),
}


def _hibc_secondary(secondary: str, offset: int, reference_date: date) -> dict[str, object]:
    main, *supplemental = secondary.split("/")
    fields: dict[str, object] = {}
    warnings: list[str] = []
    position = offset
    if main.startswith("$$"):
        is_serial = main.startswith("$$+")
        rest = main[3:] if is_serial else main[2:]
        position += len(main) - len(rest)
        quantity_digits = {"8": 2, "9": 5}.get(rest[:1], -1)
        if quantity_digits > 0:
            rest = rest[1 + quantity_digits :]
            position += 1 + quantity_digits
        expiry, consumed = _hibc_date(rest, position, reference_date)
        if expiry is not None:
            fields["expiry"] = expiry
        fields["serial" if is_serial else "lot"] = _hibc_text(rest[consumed:], position + consumed)
    elif main.startswith("$+"):
        fields["serial"] = _hibc_text(main[2:], position + 2)
    elif main.startswith("$"):
        fields["lot"] = _hibc_text(main[1:], position + 1)
    elif main[:5].isdigit():
        fields["expiry"] = _hibc_parse_date(_hibc_yyjjj, main[:5], position, reference_date)
        fields["lot"] = _hibc_text(main[5:], position + 5)
    else:
        raise UdiError("unrecognised HIBC secondary data", ai="HIBC", position=position)
    position = offset + len(main) + 1
    for field in supplemental:
        if field.startswith("14D"):
            fields["expiry"] = _hibc_parse_date(_yyyymmdd, field[3:], position + 3, reference_date)
        elif field.startswith("16D"):
            fields["production_date"] = _hibc_parse_date(
                _yyyymmdd, field[3:], position + 3, reference_date
            )
        elif field.startswith("S"):
            fields["serial"] = _hibc_text(field[1:], position + 1)
        else:
            warnings.append(f"HIBC supplemental data {field!r} at position {position} ignored")
        position += len(field) + 1
    fields["warnings"] = tuple(warnings)
    return fields


def _yyyymmdd(digits: str, _reference: date) -> date:
    if len(digits) != 8:
        raise ValueError("expected YYYYMMDD")
    return date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))


def _hibc_date(rest: str, position: int, reference_date: date) -> tuple[date | None, int]:
    flag = rest[:1]
    if flag not in _HIBC_DATE_FORMATS:
        raise UdiError("unknown HIBC date format flag", ai="HIBC", position=position)
    consumed, digits, parser = _HIBC_DATE_FORMATS[flag]
    if parser is None:
        return None, consumed
    return _hibc_parse_date(parser, rest[:consumed][digits], position, reference_date), consumed


def _hibc_parse_date(parser: _HibcDate, digits: str, position: int, reference_date: date) -> date:
    if not (digits.isascii() and digits.isdigit()):
        raise UdiError("date must be digits", ai="HIBC", position=position)
    try:
        return parser(digits, reference_date)
    except ValueError as error:
        raise UdiError(f"invalid date {digits}: {error}", ai="HIBC", position=position) from None


def _hibc_text(value: str, position: int) -> str:
    if not 1 <= len(value) <= 18:
        raise UdiError("lot or serial must be 1-18 characters", ai="HIBC", position=position)
    return value
