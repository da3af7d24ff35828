"""The boundary asked for one resource type (``visible(..., resource_type=T)``, what a search, a read, an
include and an export of one type carry) is the same decision as the general one: for every organisation
and every stored row of every type, the same rows pass. The scene is the boundary tests' (consents current,
revoked, ended and future; referrals from two clinics; an NPI-identified recipient), with a SUD counseling
note of a participant whose consent names ``sud-counseling-notes`` and one whose consent does not."""

from __future__ import annotations

from sqlalchemy import select

from service.auth.boundary import PUBLIC_TYPES, visible
from service.store.tables import fhir_resources
from tests.api.test_auth_boundaries import (  # noqa: F401 - scene: a fixture
    CLINIC,
    HOSPITAL,
    NPI_HOSPITAL,
    OTHER_CLINIC,
    Scene,
    key,
    org,
    scene,
)
from tests.factories import TODAY, consent_body, create, note_body

ORGANIZATIONS = [
    key(HOSPITAL),
    key(CLINIC),
    key(OTHER_CLINIC),
    f"http://hl7.org/fhir/sid/us-npi|{NPI_HOSPITAL}",
    "urn:oid:2.16.840.1.113883.19.5|NOBODY",
]


async def _sud_notes(client, seen: Scene) -> None:
    """A SUD counseling note for A (whose consent names ``notes``, which does not open it) and for E,
    whose new consent names ``sud-counseling-notes`` but not ``notes`` (its other notes stay closed)."""
    for letter in "AE":
        encounter = seen.encounters[letter][0]
        specialist = (await client.get(f"/peer/v1/encounters/{encounter}")).json()["specialist_id"]
        body = {**note_body(encounter, specialist), "sud_counseling_note": True}
        note = await create(client, "notes", body)
        assert (await client.post(f"/peer/v1/notes/{note['id']}/sign")).status_code == 200
    period = {"start": str(TODAY), "end": None}
    own = consent_body(
        seen.participant["E"],
        recipient=org(HOSPITAL, "General Hospital"),
        categories=["sud-counseling-notes", "encounters"],
        period=period,
    )
    await create(client, "consents", own)


async def test_the_boundary_of_one_type_is_the_general_boundary(client, database, scene):  # noqa: F811
    await _sud_notes(client, scene)
    r = fhir_resources.c
    async with database.read() as conn:
        types = sorted({row.resource_type for row in await conn.execute(select(r.resource_type).distinct())})
        assert {"DocumentReference", "Encounter", "Patient", "Practitioner"} <= set(types)
        assert PUBLIC_TYPES & set(types)
        differed = 0
        for organization in ORGANIZATIONS:
            for resource_type in types:
                of_type = select(r.pk).where(r.resource_type == resource_type)
                inside, typed = visible(organization), visible(organization, resource_type=resource_type)
                assert inside is not None and typed is not None
                general = {row.pk for row in await conn.execute(of_type.where(inside))}
                assert {row.pk for row in await conn.execute(of_type.where(typed))} == general, (
                    organization,
                    resource_type,
                )
                every = {row.pk for row in await conn.execute(of_type)}
                differed += general != every and bool(general)
        # the scene opens some but not all rows of some types: the comparison is not between empty sets
        assert differed >= 3
