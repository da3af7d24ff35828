"""FHIR primitives as the specification defines them: dateTime and date at any precision, instant full."""

from __future__ import annotations

from datetime import date

import pytest

from mappings.context import MappingError
from mappings.primitives import date_time, day_of, instant, precision


@pytest.mark.parametrize(
    ("value", "start"),
    [
        ("2026", "2026-01-01T00:00:00+00:00"),
        ("2026-11", "2026-11-01T00:00:00+00:00"),
        ("2026-11-20", "2026-11-20T00:00:00+00:00"),
        ("2026-11-20T10:00:00Z", "2026-11-20T10:00:00+00:00"),
        ("2026-11-20T10:00:00.123-05:00", "2026-11-20T10:00:00.123000-05:00"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59+00:00"),
    ],
)
def test_date_time_reads_every_precision_fhir_allows(value, start):
    assert date_time(value, "X.when").isoformat() == start


@pytest.mark.parametrize("value", ["2026-11-20T10:00:00", "2026-11-20T10:00Z", "26-11-20", "2026-02-30", "", 2026])
def test_date_time_refuses_what_fhir_refuses_naming_the_element(value):
    with pytest.raises(MappingError) as caught:
        date_time(value, "X.when")
    assert caught.value.element == "X.when"


def test_instant_needs_full_precision():
    assert instant("2026-11-20T10:00:00Z", "X.at").year == 2026
    for partial in ("2026-11-20", "2026"):
        with pytest.raises(MappingError):
            instant(partial, "X.at")


def test_day_of_names_what_a_partial_date_lacks():
    assert day_of("1990-04-01", "Patient.birthDate") == date(1990, 4, 1)
    with pytest.raises(MappingError, match="valid FHIR date"):
        day_of("1990", "Patient.birthDate")
    with pytest.raises(MappingError, match="a FHIR date is"):
        day_of("1990-04-01T00:00:00Z", "Patient.birthDate")


def test_precision():
    assert [precision(v) for v in ("2026", "2026-11", "2026-11-20", "2026-11-20T10:00:00Z")] == [
        "year",
        "month",
        "day",
        "time",
    ]
