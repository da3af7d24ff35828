from tests.factories import World


async def test_world_builds_through_the_api(client):
    world = await World(client).build()
    response = await client.get(f"/peer/v1/encounters/{world.ids['encounter']}")
    assert response.status_code == 200
    body = response.json()
    assert body["billable_units"] == 3
    assert response.headers["etag"] == 'W/"1"'
