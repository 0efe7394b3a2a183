"""GS1 / HIBC UDI parsing; see shared DOMAIN §3."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.udi import (
    GS,
    UdiError,
    build_udi,
    expand_two_digit_year,
    gtin_check_digit,
    hibc_check_character,
    is_valid_gtin,
    normalize_gtin,
    parse_udi,
)

AS_OF = date(2026, 5, 1)
# Characters of GS1 set 82 that cannot be mistaken for a bracketed AI.
SAFE_TEXT = "!\"%&'*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


@st.composite
def gtins(draw: st.DrawFn) -> str:
    body = draw(st.sampled_from([7, 11, 12, 13]).flatmap(_digit_strings))
    return body + gtin_check_digit(body)


def _digit_strings(length: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=length, max_size=length)


def _texts(max_size: int) -> st.SearchStrategy[str]:
    return st.text(SAFE_TEXT, min_size=1, max_size=max_size)


# Inside the century window of AS_OF, so YYMMDD reads back as the same date.
window_dates = st.dates(min_value=date(1977, 1, 1), max_value=date(2076, 12, 31))


def test_domain_worked_example_gtin13_is_valid_and_stored_as_14_digits() -> None:
    assert is_valid_gtin("8904000210037")
    assert normalize_gtin("8904000210037") == "08904000210037"


def test_domain_worked_example_wrong_check_digit_is_rejected() -> None:
    assert not is_valid_gtin("8904000210031")
    with pytest.raises(UdiError) as error:
        normalize_gtin("8904000210031")
    assert error.value.ai == "01"
    assert error.value.position == 12
    assert "expected 7" in str(error.value)


@given(gtins(), st.data())
def test_any_one_digit_change_to_a_gtin_is_detected(gtin: str, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(gtin) - 1))
    digit = data.draw(st.sampled_from("0123456789").filter(lambda d: d != gtin[index]))
    changed = gtin[:index] + digit + gtin[index + 1 :]
    assert not is_valid_gtin(changed)
    with pytest.raises(UdiError) as error:
        parse_udi(f"(01){changed.zfill(14)}", reference_date=AS_OF)
    assert error.value.ai == "01"


@given(
    gtin=gtins(),
    lot=st.none() | _texts(20),
    serial=st.none() | _texts(20),
    expiry=st.none() | window_dates,
    production_date=st.none() | window_dates,
    additional_id=st.none() | _texts(30),
    form=st.sampled_from(["human", "scanner"]),
)
def test_built_udi_parses_back_to_the_same_data(
    gtin: str,
    lot: str | None,
    serial: str | None,
    expiry: date | None,
    production_date: date | None,
    additional_id: str | None,
    form: str,
) -> None:
    text = build_udi(
        gtin=gtin,
        lot=lot,
        serial=serial,
        expiry=expiry,
        production_date=production_date,
        additional_id=additional_id,
        form=form,  # type: ignore[arg-type]
    )
    udi = parse_udi(text, reference_date=AS_OF)
    assert udi.format == "gs1"
    assert (udi.gtin, udi.lot, udi.serial, udi.expiry, udi.production_date) == (
        gtin.zfill(14),
        lot,
        serial,
        expiry,
        production_date,
    )
    assert udi.additional_id == additional_id
    assert udi.warnings == ()


@given(lot=st.text(SAFE_TEXT + "()", min_size=1, max_size=20), serial=_texts(20))
def test_scanner_form_round_trips_any_gs1_characters(lot: str, serial: str) -> None:
    text = build_udi(gtin="8904000210037", lot=lot, serial=serial, form="scanner")
    udi = parse_udi(text, reference_date=AS_OF)
    assert (udi.lot, udi.serial) == (lot, serial)


def test_human_and_scanner_forms_of_one_label_agree() -> None:
    human = parse_udi("(01)08904000210037(17)270131(10)LOT-7(21)SN001", reference_date=AS_OF)
    scanner = parse_udi(f"]d201089040002100371727013110LOT-7{GS}21SN001", reference_date=AS_OF)
    assert human == scanner
    assert human.expiry == date(2027, 1, 31)
    assert (human.lot, human.serial) == ("LOT-7", "SN001")


def test_variable_field_ends_at_group_separator_before_a_fixed_field() -> None:
    udi = parse_udi(f"0108904000210037{GS}10A1{GS}17270131240REF-9", reference_date=AS_OF)
    assert udi.lot == "A1"
    assert udi.expiry == date(2027, 1, 31)


def test_sscc_and_production_date_are_read() -> None:
    sscc = "00614141" + "123456789"
    sscc += gtin_check_digit(sscc)
    udi = parse_udi(f"(00){sscc}(11)250615", reference_date=AS_OF)
    assert udi.sscc == sscc
    assert udi.production_date == date(2025, 6, 15)


def test_expiry_day_00_means_last_day_of_month_with_healthcare_warning() -> None:
    udi = parse_udi("(01)08904000210037(17)280200", reference_date=AS_OF)
    assert udi.expiry == date(2028, 2, 29)
    assert len(udi.warnings) == 1
    assert "regulated healthcare" in udi.warnings[0]


def test_expiry_day_00_is_an_error_in_strict_mode() -> None:
    with pytest.raises(UdiError) as error:
        parse_udi("(01)08904000210037(17)280200", reference_date=AS_OF, strict=True)
    assert error.value.ai == "17"
    assert error.value.position == 26


def test_expiry_day_00_before_the_cutover_is_accepted_silently() -> None:
    udi = parse_udi("(17)240600", reference_date=date(2024, 12, 31), strict=True)
    assert udi.expiry == date(2024, 6, 30)
    assert udi.warnings == ()


@pytest.mark.parametrize(
    ("yy", "reference", "year"),
    [
        (76, date(2026, 1, 1), 2076),  # d = 50: current century
        (77, date(2026, 1, 1), 1977),  # d = 51: previous century
        (0, date(2026, 1, 1), 2000),
        (30, date(2090, 1, 1), 2130),  # d = -60: next century
        (41, date(2090, 1, 1), 2041),  # d = -49: current century
    ],
)
def test_two_digit_years_follow_the_gs1_century_rule(yy: int, reference: date, year: int) -> None:
    assert expand_two_digit_year(yy, reference) == year


def test_century_depends_on_the_reference_date_not_the_clock() -> None:
    text = "(17)800101"
    assert parse_udi(text, reference_date=date(2026, 1, 1)).expiry == date(1980, 1, 1)
    assert parse_udi(text, reference_date=date(2040, 1, 1)).expiry == date(2080, 1, 1)


@pytest.mark.parametrize(
    ("text", "ai", "position", "message"),
    [
        ("(01)0890400021003(10)A", "01", 4, "expected 14 digits, found 13"),
        ("(01)08904000210037(17)271301", "17", 24, "month 13"),
        ("(01)08904000210037(17)270230", "17", 26, "day 30 does not exist"),
        ("(10)" + "L" * 21, "10", 24, "at most 20"),
        ("(21)SN 1", "21", 6, "outside the GS1 character set"),
        ("(01)08904000210037(30)5", "30", 18, "unknown"),
        ("(10)A(10)B", "10", 9, "appears twice"),
        ("0108904000210037" + "99ABC", "99", 16, "unknown"),
        ("01089040002100X7", "01", 14, "not a digit"),
        ("(10)", "10", 4, "is empty"),
    ],
)
def test_errors_name_the_ai_and_position(text: str, ai: str, position: int, message: str) -> None:
    with pytest.raises(UdiError) as error:
        parse_udi(text, reference_date=AS_OF)
    assert (error.value.ai, error.value.position) == (ai, position)
    assert message in str(error.value)


def test_build_scanner_form_separates_only_non_final_variable_fields() -> None:
    text = build_udi(
        gtin="8904000210037", lot="L1", serial="S1", expiry=date(2027, 1, 31), form="scanner"
    )
    assert text == f"01089040002100371727013110L1{GS}21S1"


def test_build_refuses_an_invalid_gtin() -> None:
    with pytest.raises(UdiError, match="check digit"):
        build_udi(gtin="8904000210031")


def test_hibc_is_recognised_and_parsed() -> None:
    udi = parse_udi("+E20831269/$$8020423286539+", reference_date=AS_OF)
    assert udi.format == "hibc"
    assert udi.gtin is None
    assert (udi.hibc_labeler, udi.hibc_product, udi.hibc_unit_of_measure) == ("E208", "3126", 9)
    assert udi.lot == "286539"
    assert udi.expiry == date(2023, 4, 30)  # MMYY: end of month


@pytest.mark.parametrize(
    ("secondary", "expiry", "lot", "serial"),
    [
        ("$$3270131LOT1", date(2027, 1, 31), "LOT1", None),
        ("$$52702110X", date(2027, 1, 21), "10X", None),
        ("$$7LOT2", None, "LOT2", None),
        ("$$+2013127SER9", date(2027, 1, 31), None, "SER9"),
        ("$LOT3", None, "LOT3", None),
        ("$+SER4", None, None, "SER4"),
        ("$LOT5/14D20270131", date(2027, 1, 31), "LOT5", None),
    ],
)
def test_hibc_secondary_data_formats(
    secondary: str, expiry: date | None, lot: str | None, serial: str | None
) -> None:
    data = f"+A99912345/{secondary}"
    udi = parse_udi(data + hibc_check_character(data), reference_date=AS_OF)
    assert (udi.expiry, udi.lot, udi.serial) == (expiry, lot, serial)


def test_hibc_with_wrong_check_character_is_rejected() -> None:
    with pytest.raises(UdiError) as error:
        parse_udi("+A99912345/$$52001510X3", reference_date=AS_OF)
    assert error.value.ai == "HIBC"
    assert error.value.position == 22
