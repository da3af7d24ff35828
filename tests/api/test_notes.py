"""Notes: drafts are edited, signed notes are immutable and corrected by amendment."""

from tests.factories import World


async def test_sign_then_edit_is_refused_and_amendment_links_back(client):
    world = await World(client).build()
    note_path = f"/peer/v1/notes/{world.ids['note']}"
    assert (await client.patch(note_path, json={"text": "Draft edit is fine."})).status_code == 200

    signed = await client.post(f"{note_path}/sign")
    assert signed.status_code == 200
    assert signed.json()["status"] == "final" and signed.json()["signed_at"]

    edit = await client.patch(note_path, json={"text": "Rewriting history."})
    assert edit.status_code == 409
    assert "amend" in edit.json()["detail"]
    assert (await client.get(note_path)).json()["text"] == "Draft edit is fine."

    amended = await client.post(
        f"{note_path}/amend", json={"author_id": world.ids["specialist"], "text": "Correction: plan is Tuesday."}
    )
    assert amended.status_code == 201
    amendment = amended.json()
    assert amendment["status"] == "amended" and amendment["amends_id"] == world.ids["note"]
    assert amendment["encounter_id"] == world.ids["encounter"]
    assert amended.headers["location"] == f"/peer/v1/notes/{amendment['id']}"
    original = (await client.get(note_path)).json()
    assert original["status"] == "final" and original["text"] == "Draft edit is fine."

    listed = (await client.get(f"/peer/v1/notes?encounter_id={world.ids['encounter']}")).json()["items"]
    assert {n["id"] for n in listed} == {world.ids["note"], amendment["id"]}


async def test_sign_twice_and_amend_a_draft_are_refused(client):
    world = await World(client).build()
    note_path = f"/peer/v1/notes/{world.ids['note']}"
    amend = await client.post(f"{note_path}/amend", json={"author_id": world.ids["specialist"], "text": "x"})
    assert amend.status_code == 409
    assert (await client.post(f"{note_path}/sign")).status_code == 200
    assert (await client.post(f"{note_path}/sign")).status_code == 409


async def test_retract_marks_entered_in_error_once(client):
    world = await World(client).build()
    note_path = f"/peer/v1/notes/{world.ids['note']}"
    await client.post(f"{note_path}/sign")
    retracted = await client.post(f"{note_path}/retract")
    assert retracted.status_code == 200 and retracted.json()["status"] == "entered-in-error"
    assert (await client.post(f"{note_path}/retract")).status_code == 409


async def test_revoked_consent_is_closed(client):
    world = await World(client).build()
    path = f"/peer/v1/consents/{world.ids['consent']}"
    revoked = await client.post(f"{path}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert (await client.post(f"{path}/revoke")).status_code == 409
    assert (await client.patch(path, json={"categories": ["notes"]})).status_code == 409
