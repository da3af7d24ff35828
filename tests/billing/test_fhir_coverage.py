"""A FHIR Coverage received with a referral becomes coverage on file, once."""

from __future__ import annotations

from datetime import date

from service.domain.billing import PAYERS_DIR, load_payers
from service.records.coverage_fhir import fields_from_fhir, payer_of
from tests.api.test_fhir_write import post
from tests.inbound.test_context_search import PATIENT_URL, context_bundle

RECEIVED = date(2026, 3, 1)
ORG_URL = "urn:uuid:6a1a6f0e-0000-4000-8000-0000000002aa"


def _coverage(**changes):
    return {
        "resourceType": "Coverage",
        "status": "active",
        "subscriberId": "NC-778899",
        "beneficiary": {"reference": PATIENT_URL},
        "payor": [{"display": "North Carolina Medicaid"}],
        "period": {"start": "2026-01-01T00:00:00Z", "end": "2026-12-31"},
        "relationship": {"coding": [{"code": "self"}]},
        "class": [
            {"type": {"coding": [{"code": "plan"}]}, "value": "SP-1", "name": "Standard Plan"},
            {"type": {"coding": [{"code": "group"}]}, "value": "G-7"},
        ],
        **changes,
    }


def test_a_fhir_coverage_names_its_payer_member_period_and_plan():
    fields = fields_from_fhir(_coverage(), "p-1", RECEIVED, {}, load_payers())
    assert fields is not None
    assert (fields.payer, fields.member_id, fields.plan, fields.group_number) == (
        "nc-medicaid",
        "NC-778899",
        "Standard Plan",
        "G-7",
    )
    assert (fields.period.start, fields.period.end) == (date(2026, 1, 1), date(2026, 12, 31))


def test_payor_by_a_sent_organization_else_the_generic_rules():
    organization = {"resourceType": "Organization", "name": "Texas Medicaid"}
    coverage = _coverage(payor=[{"reference": ORG_URL}])
    assert payer_of(coverage, {ORG_URL: organization}, load_payers()) == "tx-medicaid"
    assert payer_of(_coverage(payor=[{"display": "Acme Health"}]), {}, load_payers()) == "default"


def test_a_program_file_lists_its_payer_identifiers(tmp_path):
    text = (
        (PAYERS_DIR / "default.toml")
        .read_text()
        .replace('id = "default"', 'id = "acme"\npayors = ["urn:example:payers|ACME"]')
    )
    (tmp_path / "acme.toml").write_text(text)
    payers = load_payers(tmp_path)
    by_identifier = _coverage(payor=[{"identifier": {"system": "urn:example:payers", "value": "ACME"}}])
    assert payer_of(by_identifier, {}, payers) == "acme"


def test_what_cannot_be_billed_against_is_not_recorded():
    payers = load_payers()
    assert fields_from_fhir(_coverage(status="cancelled"), "p-1", RECEIVED, {}, payers) is None
    no_member = _coverage(subscriberId="bad id!")
    assert fields_from_fhir(no_member, "p-1", RECEIVED, {}, payers) is None
    backwards = _coverage(period={"start": "2026-05-01", "end": "2026-01-01"})
    assert fields_from_fhir(backwards, "p-1", RECEIVED, {}, payers) is None
    child = fields_from_fhir(
        _coverage(relationship={"coding": [{"code": "child"}]}, period={}), "p", RECEIVED, {}, payers
    )
    assert child is not None
    assert (child.relationship, child.period.start) == ("child", RECEIVED)


async def test_a_referral_transaction_records_its_coverage_once(client):
    bundle = context_bundle()
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Coverage":
            entry["resource"] = _coverage()
    answer = await post(client, "", bundle)
    assert answer.status_code == 200, answer.text
    again = await post(client, "", bundle)
    assert again.status_code == 200, again.text
    listed = (await client.get("/peer/v1/coverages")).json()["items"]
    assert [(c["payer"], c["member_id"], c["plan"]) for c in listed] == [("nc-medicaid", "NC-778899", "Standard Plan")]
    participant = (await client.get("/peer/v1/participants")).json()["items"][0]["id"]
    assert listed[0]["participant_id"] == participant
