"""The Bulk Data part of the CapabilityStatement (kept apart from ``metadata``, which calls it):
the statement instantiates the Bulk Data Access IG's server CapabilityStatement, the ``export``
operations point at the IG's OperationDefinitions (system, Patient and Group level), and the
partners' Groups are listed with the interactions and search parameters they are served with.
Canonicals: https://hl7.org/fhir/uv/bulkdata/ (STU 2, 2.0.0)."""

from __future__ import annotations

from typing import Any

BULK = "http://hl7.org/fhir/uv/bulkdata"
INSTANTIATES = f"{BULK}/CapabilityStatement/bulk-data"
SYSTEM_EXPORT = f"{BULK}/OperationDefinition/export"
PATIENT_EXPORT = f"{BULK}/OperationDefinition/patient-export"
GROUP_EXPORT = f"{BULK}/OperationDefinition/group-export"
GROUP = {
    "type": "Group",
    "profile": "http://hl7.org/fhir/StructureDefinition/Group",
    "documentation": "One Group per partner organisation (EHR connection or registered client): the "
    "participants whose data consents and referrals open to it. A partner's client sees its own.",
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "searchParam": [
        {"name": "_id", "type": "token"},
        {"name": "identifier", "type": "token", "documentation": "The organisation's identifier (system|value)"},
    ],
    "operation": [{"name": "export", "definition": GROUP_EXPORT}],
}


def with_bulk_data(statement: dict[str, Any]) -> dict[str, Any]:
    """The statement with the Bulk Data canonicals, when the routes serve ``$export``."""
    rest = statement["rest"][0]
    operations = rest.get("operation") or []
    if not any(op["name"] == "export" for op in operations):
        return statement
    for op in operations:
        if op["name"] == "export":
            op["definition"] = SYSTEM_EXPORT
    for resource in rest["resource"]:
        for op in resource.get("operation") or []:
            if resource["type"] == "Patient" and op["name"] == "export":
                op["definition"] = PATIENT_EXPORT
    if not any(r["type"] == "Group" for r in rest["resource"]):
        rest["resource"].append(GROUP)
    return {**statement, "instantiates": [INSTANTIATES]}
