"""read, vread and history of the FHIR projection, kept in step with the records."""

import httpx
import pytest

from mappings.ids import fhir_id
from mappings.models import validate
from service.domain.errors import NotFound
from tests.conftest import token_headers
from tests.factories import World, consent_body, create


def _id(program, kind: str, domain_id: str) -> str:
    return fhir_id(program.identifier_system, kind, domain_id)


async def test_read_serves_valid_fhir_with_version_headers(client, program):
    world = await World(client).build()
    response = await client.get(f"/fhir/Patient/{_id(program, 'participant', world.ids['participant'])}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["last-modified"].endswith("GMT")
    resource = response.json()
    validate(resource)
    assert resource["meta"]["versionId"] == "1"
    assert resource["meta"]["lastUpdated"].endswith("Z")
    assert resource["meta"]["profile"]


async def test_a_change_makes_a_new_version_and_history_keeps_both(client, program):
    world = await World(client).build()
    fid = _id(program, "participant", world.ids["participant"])
    patched = await client.patch(f"/peer/v1/participants/{world.ids['participant']}", json={"language": "vi"})
    assert patched.status_code == 200

    current = (await client.get(f"/fhir/Patient/{fid}")).json()
    assert current["meta"]["versionId"] == "2"
    assert current["communication"][0]["language"]["coding"][0]["code"] == "vi"
    first = (await client.get(f"/fhir/Patient/{fid}/_history/1")).json()
    assert first["communication"][0]["language"]["coding"][0]["code"] == "en"

    history = (await client.get(f"/fhir/Patient/{fid}/_history")).json()
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert history["entry"][1]["request"]["method"] == "POST"
    assert (await client.get(f"/fhir/Patient/{fid}/_history/3")).status_code == 404


async def test_type_history_pages_with_a_cursor(client, program):
    await World(client).build()
    seen = []
    url = "/fhir/Encounter/_history?_count=1"
    for _ in range(5):
        page = (await client.get(url)).json()
        seen += [e["fullUrl"] for e in page["entry"]]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not nxt:
            break
        url = nxt[0].removeprefix("http://peerlink.test")
    assert len(seen) == len(set(seen)) == 1


async def test_peer_transitions_show_on_the_task(client, program):
    world = await World(client).build()
    referral_id = world.ids["referral"]
    task_url = f"/fhir/Task/{_id(program, 'referral-task', referral_id)}"
    assert (await client.get(task_url)).json()["status"] == "requested"
    for action, body in (
        ("receive", {"by": "x"}),
        ("accept", {"by": "x", "specialist_id": world.ids["specialist"]}),
        ("start", {"by": "x"}),
        ("complete", {"by": "x", "outcome_summary": "Connected to housing services."}),
    ):
        assert (await client.post(f"/peer/v1/referrals/{referral_id}/{action}", json=body)).status_code == 200
        task = (await client.get(task_url)).json()
        expected = {"receive": "received", "accept": "accepted", "start": "in-progress", "complete": "completed"}
        assert task["status"] == expected[action]
        assert task["businessStatus"]["coding"]
    outputs = task["output"]
    assert any("valueReference" in o for o in outputs)  # the delivered encounter
    assert any(o.get("valueString") == "Connected to housing services." for o in outputs)


async def test_a_substance_use_consent_labels_the_participants_notes(client, program):
    world = await World(client).build()
    note_url = f"/fhir/DocumentReference/{_id(program, 'note', world.ids['note'])}"
    before = (await client.get(note_url)).json()
    codes_before = {s["code"] for s in before["meta"].get("security", [])}
    assert "42CFRPart2" in codes_before  # World's consent already says substance use

    other = await create(
        client, "participants", {"name": {"family": "Second"}, "birth_date": "1991-02-03", "gender": "male"}
    )
    enc = await create(
        client,
        "encounters",
        {
            "participant_id": other["id"],
            "specialist_id": world.ids["specialist"],
            "start": "2026-01-05T15:00:00Z",
            "end": "2026-01-05T15:40:00Z",
            "modality": "phone",
            "support_categories": ["emotional"],
            "status": "finished",
        },
    )
    note = await create(
        client, "notes", {"encounter_id": enc["id"], "author_id": world.ids["specialist"], "text": "Plan: call."}
    )
    url = f"/fhir/DocumentReference/{_id(program, 'note', note['id'])}"
    assert "security" not in (await client.get(url)).json()["meta"]
    await create(client, "consents", consent_body(other["id"], substance_use=True))
    labelled = (await client.get(url)).json()
    assert labelled["meta"]["versionId"] == "2"
    assert {s["code"] for s in labelled["meta"]["security"]} >= {"R", "42CFRPart2"}


async def test_records_of_another_program_are_not_found(client, program, database):
    from service.domain import ProgramFields
    from service.records.programs import create_program

    world = await World(client).build()
    async with database.transaction() as conn:
        other = await create_program(
            conn, ProgramFields(code="other", name="Other", identifier_system="https://o.example.org")
        )
    url = f"/fhir/Patient/{_id(program, 'participant', world.ids['participant'])}"
    headers = await token_headers(client, database, other, "other-program")
    assert (await client.get(url, headers=headers)).status_code == 404


async def test_errors_are_operation_outcomes(client):
    cases = [
        ("/fhir/Nope/1", 404),
        ("/fhir/Patient/does-not-exist", 404),
        ("/fhir/Patient/bad!id", 422),
        ("/fhir/Patient/x?_format=xml", 406),
        ("/fhir/Patient/x/_history/0", 422),
        ("/fhir/Patient/_history?_count=0", 422),
        ("/fhir/Patient/_history?_cursor=garbage", 400),
    ]
    for url, status in cases:
        response = await client.get(url)
        assert response.status_code == status, url
        body = response.json()
        assert body["resourceType"] == "OperationOutcome", url
        assert body["issue"][0]["severity"] == "error"
    xml_only = await client.get("/fhir/Patient/x", headers={"Accept": "application/fhir+xml"})
    assert xml_only.status_code == 406


async def test_pretty_and_gzip(client, program):
    world = await World(client).build()
    url = f"/fhir/Encounter/{_id(program, 'encounter', world.ids['encounter'])}"
    pretty = await client.get(url, params={"_pretty": "true"})
    assert pretty.text.startswith('{\n  "resourceType"')
    zipped = await client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200
    assert zipped.headers.get("content-encoding") == "gzip"
    assert zipped.json()["resourceType"] == "Encounter"
    assert isinstance(zipped, httpx.Response)


async def test_the_keyed_fast_read_agrees_with_the_store(client, program, database):
    from service.fhir import repository

    world = await World(client).build()
    fid = _id(program, "encounter", world.ids["encounter"])
    fast = await repository.read_current(database, program.id, "Encounter", fid)
    async with database.read() as conn:
        slow = await repository.current(conn, program.id, "Encounter", fid)
    assert fast == slow
    with pytest.raises(NotFound):
        await repository.read_current(database, program.id, "Patient", fid)  # the id of another type


async def test_history_since_leaves_out_older_versions(client, program):
    world = await World(client).build()
    fid = _id(program, "participant", world.ids["participant"])
    first = (await client.get(f"/fhir/Patient/{fid}")).json()["meta"]["lastUpdated"]
    await client.patch(f"/peer/v1/participants/{world.ids['participant']}", json={"language": "es"})
    second = (await client.get(f"/fhir/Patient/{fid}")).json()["meta"]["lastUpdated"]
    assert second > first
    recent = (await client.get(f"/fhir/Patient/{fid}/_history", params={"_since": second})).json()
    assert [e["resource"]["meta"]["versionId"] for e in recent["entry"]] == ["2"]
    everything = (await client.get(f"/fhir/Patient/{fid}/_history", params={"_since": first})).json()
    assert len(everything["entry"]) == 2


async def test_a_body_over_the_limit_is_413_as_an_operation_outcome(client):
    big = {"resourceType": "ServiceRequest", "note": [{"text": "x" * 70_000}]}
    response = await client.post("/fhir/ServiceRequest", json=big)
    assert response.status_code == 413
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.headers["content-type"].startswith("application/fhir+json")
