"""The SMART client-assertion check the gateway and the sandbox share (``service.auth.assertion``),
with its storage in memory: bad alg, missing kid, exp too far ahead, a replayed jti, and the rest."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from service.auth.assertion import (
    Authenticated,
    OAuthError,
    SmartAssertionCheck,
    authenticate,
    client_key_set,
)
from service.auth.clients import JwksFetcher, RegisteredClient
from service.auth.token_form import error_answer, token_form
from tests.auth_support import ASSERTION_TYPE, assertion, ec_key, rsa_key
from tests.auth_support import token_form as form_of

TOKEN_URL = "https://ehr.example/auth/token"
CLIENT = "client-1"


def _client(jwks: dict[str, Any], *, disabled: bool = False) -> RegisteredClient:
    return RegisteredClient(CLIENT, "p", None, "system/*.rs system/Task.u", jwks, None, disabled, datetime.now(UTC))


class Memory:
    """Registrations and used jtis, as a test keeps them."""

    def __init__(self, client: RegisteredClient | None) -> None:
        self.client = client
        self.jtis: set[tuple[str, str]] = set()

    async def find(self, client_id: str) -> RegisteredClient | None:
        return self.client if self.client is not None and self.client.client_id == client_id else None

    async def keys(self, client: RegisteredClient, kid: Any) -> Any:
        return await client_key_set(client, kid, JwksFetcher(1.0))

    async def claim(self, client_id: str, jti: str, exp: float) -> bool:
        if (client_id, jti) in self.jtis:
            return False
        self.jtis.add((client_id, jti))
        return True

    async def run(self, form: dict[str, str], algorithms: tuple[str, ...] = ("RS384", "ES384")) -> Authenticated:
        checker = SmartAssertionCheck(TOKEN_URL, algorithms)
        return await authenticate(form, checker, find_client=self.find, client_keys=self.keys, claim_jti=self.claim)


@pytest.fixture
def memory() -> Memory:
    return Memory(_client(rsa_key().jwks))


async def _refused(memory: Memory, form: dict[str, str], error: str = "invalid_client") -> OAuthError:
    with pytest.raises(OAuthError) as raised:
        await memory.run(form)
    assert raised.value.error == error
    return raised.value


async def test_a_good_assertion_authenticates_and_grants_the_asked_scopes(memory: Memory) -> None:
    result = await memory.run(form_of(assertion(rsa_key(), CLIENT, TOKEN_URL), "system/Patient.rs system/Foo.d"))
    assert result.client.client_id == CLIENT
    assert result.granted == ["system/Patient.rs"]
    assert len(memory.jtis) == 1


async def test_a_replayed_jti_is_refused(memory: Memory) -> None:
    signed = assertion(rsa_key(), CLIENT, TOKEN_URL)
    await memory.run(form_of(signed))
    refused = await _refused(memory, form_of(signed))
    assert "jti replay" in refused.description
    assert refused.client_id == CLIENT and refused.status == 401


async def test_an_algorithm_smart_does_not_allow_is_refused(memory: Memory) -> None:
    refused = await _refused(memory, form_of(assertion(rsa_key(), CLIENT, TOKEN_URL, alg="RS256")))
    assert "RS384 or ES384" in refused.description
    assert not memory.jtis


async def test_a_narrower_algorithm_list_is_kept() -> None:
    memory = Memory(_client(ec_key().jwks))
    with pytest.raises(OAuthError, match="RS384"):
        await memory.run(form_of(assertion(ec_key(), CLIENT, TOKEN_URL)), algorithms=("RS384",))


async def test_an_assertion_without_kid_is_refused(memory: Memory) -> None:
    now = int(time.time())
    claims = {"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": now + 200, "jti": "j-1"}
    unnamed = jwt.encode(claims, rsa_key().private, algorithm="RS384")
    refused = await _refused(memory, form_of(unnamed))
    assert "kid" in refused.description


async def test_a_kid_the_client_did_not_register_is_refused(memory: Memory) -> None:
    refused = await _refused(memory, form_of(assertion(rsa_key("other"), CLIENT, TOKEN_URL)))
    assert "not among the client's registered keys" in refused.description


async def test_exp_more_than_five_minutes_ahead_is_refused(memory: Memory) -> None:
    refused = await _refused(memory, form_of(assertion(rsa_key(), CLIENT, TOKEN_URL, lifetime=600)))
    assert "more than 5 minutes" in refused.description
    assert not memory.jtis  # a refused assertion leaves no jti behind


async def test_a_wrong_audience_or_signature_is_refused(memory: Memory) -> None:
    await _refused(memory, form_of(assertion(rsa_key(), CLIENT, "https://other.example/token")))
    forged = assertion(rsa_key(), CLIENT, TOKEN_URL, signing_key=rsa_key("other").private)
    await _refused(memory, form_of(forged))


async def test_unknown_and_disabled_clients_are_refused(memory: Memory) -> None:
    unknown = await _refused(memory, form_of(assertion(rsa_key(), "nobody", TOKEN_URL)))
    assert unknown.description == "unknown client"
    disabled = Memory(_client(rsa_key().jwks, disabled=True))
    refused = await _refused(disabled, form_of(assertion(rsa_key(), CLIENT, TOKEN_URL)))
    assert "disabled" in refused.description


async def test_iss_must_be_sub(memory: Memory) -> None:
    signed = assertion(rsa_key(), CLIENT, TOKEN_URL, claims={"iss": "someone-else"})
    refused = await _refused(memory, form_of(signed))
    assert "iss and sub" in refused.description


async def test_the_grant_and_the_assertion_type_are_checked_first(memory: Memory) -> None:
    signed = assertion(rsa_key(), CLIENT, TOKEN_URL)
    await _refused(memory, {**form_of(signed), "grant_type": "password"}, "unsupported_grant_type")
    await _refused(memory, {**form_of(signed), "client_assertion_type": "other"}, "invalid_request")
    await _refused(memory, form_of(signed, "patient/*.rs"), "invalid_scope")
    assert not memory.jtis


def test_token_form_takes_one_urlencoded_form() -> None:
    body = f"grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}&scope=".encode()
    form = token_form("application/x-www-form-urlencoded; charset=utf-8", body)
    assert form == {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "scope": ""}
    with pytest.raises(OAuthError, match="x-www-form-urlencoded"):
        token_form("application/json", b"{}")
    with pytest.raises(OAuthError, match="repeated"):
        token_form("application/x-www-form-urlencoded", b"a=1&a=2")
    with pytest.raises(OAuthError, match="not a valid form"):
        token_form("application/x-www-form-urlencoded", b"\xff\xfe")


def test_error_answer_is_never_cached_and_challenges_on_401() -> None:
    body, status, headers = error_answer(OAuthError("invalid_client", "no", 401))
    assert body == {"error": "invalid_client", "error_description": "no"} and status == 401
    assert headers["Cache-Control"] == "no-store" and headers["WWW-Authenticate"] == "Bearer"
    assert "WWW-Authenticate" not in error_answer(OAuthError("invalid_scope", "no"))[2]
