"""The CapabilityStatement says what bulk export serves: it instantiates the Bulk Data IG's server
statement and names the IG's OperationDefinitions for the system, Patient and Group exports."""

from __future__ import annotations

from mappings.models import validate
from service.api.fhir import bulk_capability


async def test_the_statement_names_the_bulk_data_canonicals(http):
    statement = (await http.get("/fhir/metadata")).json()
    validate(statement)
    assert statement["instantiates"] == ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"]
    rest = statement["rest"][0]
    system = [op for op in rest["operation"] if op["name"] == "export"]
    assert system == [{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}]
    resources = {r["type"]: r for r in rest["resource"]}
    assert resources["Patient"]["operation"] == [
        {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"}
    ]
    group = resources["Group"]
    assert group["operation"] == [
        {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}
    ]
    assert [i["code"] for i in group["interaction"]] == ["read", "search-type"]
    assert [p["name"] for p in group["searchParam"]] == ["_id", "identifier"]
    # the helper touches nothing when no export route is served
    bare = {"rest": [{"resource": [{"type": "Patient"}], "operation": []}]}
    assert bulk_capability.with_bulk_data(bare) == bare
