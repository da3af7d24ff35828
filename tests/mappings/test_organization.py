"""Program -> Organization (US Core Organization)."""

import orjson

from mappings import organization
from mappings.models import Organization
from service.domain import Program
from tests.mappings.support import PROGRAM, assert_golden, context

NPI = "1234567893"
FULL = Program.model_validate(
    {
        **PROGRAM.model_dump(),
        "npi": NPI,
        "telecom": [
            {"system": "phone", "value": "+1 503 555 0100", "use": "work"},
            {"system": "email", "value": "hello@harbor-peers.example.org"},
        ],
    }
)


def test_golden_organization():
    resource = organization.to_fhir(FULL, context())
    Organization.model_validate(resource)
    assert resource["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-organization"]
    assert resource["identifier"][0] == {
        "use": "official",
        "system": "https://peer.example.org/ids/program",
        "value": "program-1",
    }
    assert {"system": "http://hl7.org/fhir/sid/us-npi", "value": NPI} in resource["identifier"]
    assert resource["id"] == context().reference("program", FULL.id)["reference"].split("/")[1]
    assert_golden("organization", resource)


def test_program_without_npi_or_telecom_has_only_its_own_identifier():
    resource = organization.to_fhir(PROGRAM, context())
    Organization.model_validate(resource)
    assert [i["system"] for i in resource["identifier"]] == ["https://peer.example.org/ids/program"]
    assert "telecom" not in resource


def test_two_overlays_give_different_valid_output():
    generic = organization.to_fhir(FULL, context("generic"))
    epic = organization.to_fhir(FULL, context("epic"))
    assert generic["meta"]["profile"] != epic["meta"]["profile"]
    assert epic["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-organization|3.1.1"]
    for resource in (generic, epic, organization.to_fhir(FULL, context("oracle"))):
        Organization.model_validate(resource)


def test_mapping_twice_is_byte_identical():
    assert orjson.dumps(organization.to_fhir(FULL, context())) == orjson.dumps(organization.to_fhir(FULL, context()))
