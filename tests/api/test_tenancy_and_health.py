"""Every query is scoped by program; probes report liveness and database readiness."""

from service.domain import ProgramFields
from service.records.programs import create_program
from service.settings import Settings
from tests.conftest import token_headers
from tests.factories import World


async def test_records_of_one_program_are_invisible_to_another(client, database):
    world = await World(client).build()
    async with database.transaction() as conn:
        other_program = await create_program(
            conn, ProgramFields(code="other", name="Other Program", identifier_system="https://other.example.org/ids")
        )
    other = await token_headers(client, database, other_program, "other-program")
    assert (await client.get("/peer/v1/participants", headers=other)).json()["items"] == []
    read = await client.get(f"/peer/v1/participants/{world.ids['participant']}", headers=other)
    assert read.status_code == 404
    patch = await client.patch(f"/peer/v1/goals/{world.ids['goal']}", json={"status": "active"}, headers=other)
    assert patch.status_code == 404
    cross = await client.post(
        "/peer/v1/goals", json={"participant_id": world.ids["participant"], "description": "x"}, headers=other
    )
    assert cross.status_code == 422  # the participant is not in that program
    assert len((await client.get("/peer/v1/participants")).json()["items"]) == 1


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_readiness_fails_with_503_when_the_database_is_gone(tmp_path):
    import httpx

    from service.app import create_app

    settings = Settings(database_url=f"postgresql+asyncpg://nobody@127.0.0.1:1/{tmp_path.name}")
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
