"""Parsing a search request into the typed query (service.fhir.search.parsing and .values): modifiers,
unknown and chained parameters, value forms and escapes, _count, _include/_revinclude, _sort,
_summary, _elements, _cursor and the parameters kept for the links."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.domain.errors import BadRequest
from service.fhir.search import (
    DEFAULT_COUNT,
    MAX_COUNT,
    Criterion,
    Cursor,
    DateValue,
    Include,
    ReferenceValue,
    Sort,
    StringValue,
    TokenValue,
    encode_cursor,
    parse,
)
from service.fhir.search.values import split, unescape

BASE = "https://gw.example/fhir"


def one(resource_type: str, key: str, value: str, **options: object) -> Criterion:
    query = parse(resource_type, [(key, value)], **options)  # type: ignore[arg-type]
    assert len(query.criteria) == 1
    return query.criteria[0]


def refused(resource_type: str, items: list[tuple[str, str]], *, lenient: bool = False) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse(resource_type, items, lenient=lenient, base=BASE)
    return caught.value


# --- modifiers -------------------------------------------------------------------------------------
def test_modifiers_each_type_takes():
    assert one("Encounter", "status:not", "planned") == Criterion(
        "status", "token", (TokenValue("planned", None),), negate=True
    )
    assert one("Patient", "_id:not", "a,b") == Criterion("_id", "_id", ("a", "b"), negate=True)
    assert one("Patient", "name:exact", "Robin").values == (StringValue("Robin", "exact"),)
    assert one("Patient", "name:contains", "obi").values == (StringValue("obi", "contains"),)
    assert one("Patient", "name", "Rob").values == (StringValue("Rob", "starts"),)
    assert one("Encounter", "subject:Patient", "123").values == (ReferenceValue(("Patient/123",)),)
    assert one("Encounter", "participant:Practitioner", "p-1").values == (ReferenceValue(("Practitioner/p-1",)),)
    assert one("Encounter", "date:missing", "true") == Criterion("date", "date", missing=True)
    assert one("Patient", "_lastUpdated:missing", "false") == Criterion("_lastUpdated", "_lastUpdated", missing=False)


@pytest.mark.parametrize(
    ("resource_type", "key", "value"),
    [
        ("Patient", "name:not", "x"),  # :not is for tokens
        ("Encounter", "status:exact", "finished"),  # :exact is for strings
        ("Encounter", "date:not", "2026"),
        ("Encounter", "subject:Medication", "1"),  # a type this server does not serve
        ("Encounter", "subject:identifier", "x"),
        ("Encounter", "status:text", "done"),
        ("Patient", "_lastUpdated:not", "2026"),
    ],
)
def test_an_unsupported_modifier_is_a_400_or_skipped_when_lenient(resource_type, key, value):
    error = refused(resource_type, [(key, value)])
    assert "is not supported on" in error.detail
    assert error.errors == [{"expression": key}]
    query = parse(resource_type, [(key, value)], lenient=True)
    assert query.criteria == () and query.ignored == (key,) and query.link_params == ()


def test_missing_takes_true_or_false():
    assert refused("Encounter", [("date:missing", "yes")]).errors == [{"expression": "date:missing"}]


def test_a_reference_type_modifier_must_agree_with_a_typed_value():
    assert one("Encounter", "subject:Patient", "Patient/1").values == (ReferenceValue(("Patient/1",)),)
    error = refused("Encounter", [("subject:Patient", "Group/1")])
    assert error.detail == "subject:Patient names a Patient, not another type"
    assert error.errors == [{"expression": "subject:Patient"}]


# --- chained and unknown parameters -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "subject.name",  # chaining
        "subject:Patient.name",  # chaining through a type
        "patient.identifier",
        "_has:Encounter:patient:status",  # reverse chaining
        "shoe-size",
        "_text",
        "_content",
    ],
)
def test_chained_and_unknown_parameters_are_a_400_naming_them(key):
    error = refused("Encounter", [("status", "finished"), (key, "x")])
    assert error.errors == [{"expression": key}]
    assert key.partition(":")[0] in error.detail


def test_lenient_handling_skips_unknown_parameters_and_keeps_the_rest():
    query = parse("Encounter", [("shoe-size", "44"), ("status", "finished"), ("subject.name", "x")], lenient=True)
    assert query.ignored == ("shoe-size", "subject.name")
    assert [c.param for c in query.criteria] == ["status"]
    assert query.link_params == (("status", "finished"),)


def test_a_parameter_of_another_type_is_unknown_here():
    assert "unknown search parameter" in refused("Organization", [("birthdate", "2026")]).detail


def test_an_empty_value_is_ignored_but_an_empty_list_item_is_not():
    assert parse("Encounter", [("status", ""), ("nonsense", "")]).criteria == ()
    assert refused("Encounter", [("status", "finished,,planned")]).errors == [{"expression": "status"}]


# --- value forms ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("finished", TokenValue("finished", None)),
        ("http://s|c", TokenValue("c", "http://s")),
        ("|c", TokenValue("c", None, no_system=True)),
        ("http://s|", TokenValue(None, "http://s")),
        (r"a\|b", TokenValue("a|b", None)),
        (r"a\,b", TokenValue("a,b", None)),
        (r"http://s|a\\b", TokenValue("a\\b", "http://s")),
    ],
)
def test_token_forms(value, expected):
    assert one("Patient", "identifier", value).values == (expected,)


@pytest.mark.parametrize("value", ["|", "a|b|c"])
def test_malformed_tokens(value):
    assert refused("Patient", [("identifier", value)]).errors == [{"expression": "identifier"}]


def test_commas_are_or_and_repeats_are_and():
    query = parse("Encounter", [("status", "finished,planned"), ("status", "cancelled")])
    assert [len(c.values) for c in query.criteria] == [2, 1]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("subject", "123", ReferenceValue(("Patient/123",))),  # the parameter's own target type
        ("patient", "Patient/9/_history/2", ReferenceValue(("Patient/9",))),
        ("participant", "p-1", ReferenceValue(any_type_id="p-1")),  # no target: any type
        ("subject", f"{BASE}/Patient/5", ReferenceValue(("Patient/5",))),  # this server's base is dropped
        ("subject", "https://other.example/fhir/Patient/5", ReferenceValue(("https://other.example/fhir/Patient/5",))),
    ],
)
def test_reference_forms(key, value, expected):
    assert one("Encounter", key, value, base=BASE).values == (expected,)


def test_a_bare_reference_id_must_look_like_an_id():
    assert refused("Encounter", [("participant", "not an id!")]).errors == [{"expression": "participant"}]


def test_dates_keep_their_prefix_and_precision():
    value = one("Encounter", "date", "ge2026-01").values[0]
    assert value == DateValue("ge", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert one("Encounter", "date", "2026").values[0].prefix == "eq"  # type: ignore[union-attr]
    spaced = one("Encounter", "date", "lt2026-01-05T10:00:00 02:00").values[0]  # an unencoded "+"
    assert spaced == DateValue("lt", datetime(2026, 1, 5, 8, tzinfo=UTC), datetime(2026, 1, 5, 8, 0, 1, tzinfo=UTC))


@pytest.mark.parametrize("value", ["sa2026", "eb2026", "gtyesterday", "2026-13", "ge"])
def test_unsupported_prefixes_and_non_dates(value):
    assert refused("Encounter", [("date", value)]).errors == [{"expression": "date"}]


def test_string_values_are_kept_as_written():
    assert one("Patient", "family", r"O\,Brien").values == (StringValue("O,Brien", "starts"),)


def test_split_and_unescape_keep_escapes_until_the_value_is_read():
    assert split(r"a\,b,c", ",") == [r"a\,b", "c"]
    assert split("a\\", ",") == ["a\\"]
    assert unescape(r"a\,b\|c\$d\\e") == "a,b|c$d\\e"


# --- result controls ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "count"), [("0", 0), ("1", 1), ("50", 50), (str(MAX_COUNT), MAX_COUNT), ("501", MAX_COUNT)]
)
def test_count_is_capped(value, count):
    assert parse("Patient", [("_count", value)]).count == count


def test_count_limits_and_default():
    assert parse("Patient", []).count == DEFAULT_COUNT
    assert parse("Patient", [("_count", "99999999999")]).count == MAX_COUNT
    for value in ("-1", "1.5", "ten", "1e3"):
        assert refused("Patient", [("_count", value)]).errors == [{"expression": "_count"}]
    assert "may appear once" in refused("Patient", [("_count", "1"), ("_count", "2")]).detail


def test_include_syntax():
    query = parse(
        "Encounter",
        [("_include", "Encounter:patient"), ("_include", "Encounter:participant:Practitioner")],
    )
    assert query.includes == (Include("Encounter", "patient"), Include("Encounter", "participant", "Practitioner"))
    rev = parse("Patient", [("_revinclude", "Encounter:subject"), ("_revinclude", "CareTeam:patient:Patient")])
    assert rev.revincludes == (Include("Encounter", "subject"), Include("CareTeam", "patient", "Patient"))


@pytest.mark.parametrize(
    ("control", "value", "why"),
    [
        ("_include", "Encounter", "Type:parameter"),
        ("_include", "Encounter:patient:Patient:x", "Type:parameter"),
        ("_include", "Patient:organization", "must start with the searched type"),
        ("_include", "Encounter:status", "not a reference parameter"),
        ("_include", "Encounter:nope", "not a reference parameter"),
        ("_include", "Encounter:patient:Medication", "does not serve"),
        ("_include", "*", "Type:parameter"),
        ("_revinclude", "Medication:subject", "not a reference parameter"),
    ],
)
def test_malformed_includes(control, value, why):
    error = refused("Encounter", [(control, value)])
    assert why in error.detail
    assert error.errors == [{"expression": control}]


def test_a_modifier_on_a_control_is_a_400_or_skipped():
    assert refused("Encounter", [("_include:iterate", "Encounter:patient")]).errors == [
        {"expression": "_include:iterate"}
    ]
    lenient = parse("Encounter", [("_include:iterate", "Encounter:patient")], lenient=True)
    assert lenient.includes == () and lenient.ignored == ("_include:iterate",)


@pytest.mark.parametrize(
    ("resource_type", "value", "expected"),
    [
        ("Encounter", "-date", Sort("-date", "date", descending=True)),
        ("Task", "date", Sort("date", "authored-on")),  # Task has no date parameter: its first date one
        ("Task", "modified", Sort("modified", "modified")),
        ("Patient", "-_lastUpdated", Sort("-_lastUpdated", "_lastUpdated", descending=True)),
    ],
)
def test_sort_keys(resource_type, value, expected):
    assert parse(resource_type, [("_sort", value)]).sort == expected


@pytest.mark.parametrize("value", ["status", "date,_lastUpdated", "-", "name"])
def test_unsupported_sorts(value):
    assert refused("Encounter", [("_sort", value)]).errors == [{"expression": "_sort"}]


def test_summary_elements_and_total():
    counted = parse("Patient", [("_summary", "count"), ("_total", "none")])
    assert counted.summary_count and counted.total  # a count-only search always counts
    assert not parse("Patient", [("_total", "none")]).total
    assert parse("Patient", [("_elements", "Patient.name, gender")]).elements == ("name", "gender")
    assert refused("Patient", [("_summary", "true")]).errors == [{"expression": "_summary"}]
    assert refused("Patient", [("_total", "some")]).errors == [{"expression": "_total"}]
    assert refused("Patient", [("_elements", "name.family")]).errors == [{"expression": "_elements"}]


def test_the_cursor_is_decoded_for_the_sort_and_left_out_of_the_links():
    text = encode_cursor(Cursor("-date", datetime(2026, 1, 5, tzinfo=UTC), 10, 4))
    query = parse("Encounter", [("status", "finished"), ("_sort", "-date"), ("_cursor", text), ("_count", "5")])
    assert query.cursor == Cursor("-date", datetime(2026, 1, 5, tzinfo=UTC), 10, 4)
    assert query.link_params == (("status", "finished"), ("_sort", "-date"), ("_count", "5"))
    assert refused("Encounter", [("_sort", "date"), ("_cursor", text)]).errors == [{"expression": "_cursor"}]
