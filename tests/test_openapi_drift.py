"""The committed OpenAPI document must be exactly what the app serves (`make openapi` refreshes it)."""

from pathlib import Path

from service.cli.openapi import render

COMMITTED = Path(__file__).resolve().parents[1] / "openapi" / "peerlink.json"


def test_committed_openapi_matches_the_app():
    assert COMMITTED.exists(), "run `make openapi` and commit openapi/peerlink.json"
    assert COMMITTED.read_text() == render(), "openapi/peerlink.json is stale: run `make openapi` and commit it"


def test_every_peer_record_type_is_documented():
    import json

    paths = json.loads(render())["paths"]
    for path in (
        "specialists",
        "participants",
        "care-team-members",
        "encounters",
        "notes",
        "referrals",
        "consents",
        "goals",
    ):
        assert f"/peer/v1/{path}" in paths
        assert {"get", "post"} <= set(paths[f"/peer/v1/{path}"])
        assert {"get", "patch"} <= set(paths[f"/peer/v1/{path}/{{record_id}}"])
