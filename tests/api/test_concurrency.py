"""Two writers at once: one wins, the other gets 412/409, and no accepted change is lost."""

import asyncio

from sqlalchemy import select

from service.store.tables import record_versions
from tests.factories import World


async def test_two_writers_with_the_same_if_match_one_wins(client):
    world = await World(client).build()
    path = f"/peer/v1/participants/{world.ids['participant']}"

    async def write(language: str):
        return await client.patch(path, json={"language": language}, headers={"If-Match": 'W/"1"'})

    first, second = await asyncio.gather(write("es"), write("vi"))
    statuses = sorted([first.status_code, second.status_code])
    assert statuses[0] == 200 and statuses[1] in (409, 412), statuses
    winner = first if first.status_code == 200 else second
    loser = second if winner is first else first
    assert loser.headers["content-type"] == "application/problem+json"
    stored = (await client.get(path)).json()
    assert stored["version"] == 2
    assert stored["language"] == winner.json()["language"]


async def test_concurrent_writers_without_if_match_lose_nothing(client, database):
    world = await World(client).build()
    path = f"/peer/v1/specialists/{world.ids['specialist']}"
    changes = [{"weekly_capacity": 10 + n} for n in range(3)] + [{"specialties": ["groups"]}, {"active": True}]

    responses = await asyncio.gather(*(client.patch(path, json=change) for change in changes))
    assert {r.status_code for r in responses} <= {200, 409}
    accepted = [(change, r.json()) for change, r in zip(changes, responses, strict=True) if r.status_code == 200]
    assert accepted, "at least one writer must win"

    stored = (await client.get(path)).json()
    assert stored["version"] == 1 + len(accepted)
    # The last accepted write is the stored state, and it was built on top of every earlier accepted write.
    last = max((body for _, body in accepted), key=lambda body: body["version"])
    assert stored == last
    async with database.transaction() as conn:
        versions = (
            await conn.execute(
                select(record_versions.c.version).where(record_versions.c.record_id == world.ids["specialist"])
            )
        ).scalars()
        assert sorted(versions) == list(range(1, stored["version"] + 1))


async def test_stale_if_match_is_412_and_changes_nothing(client):
    world = await World(client).build()
    path = f"/peer/v1/goals/{world.ids['goal']}"
    assert (await client.patch(path, json={"status": "active"}, headers={"If-Match": 'W/"1"'})).status_code == 200
    stale = await client.patch(path, json={"status": "cancelled"}, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert (await client.get(path)).json()["status"] == "active"
