"""Small pure pieces: when a cookie is Secure, where sign-in may send the browser, how times read,
the CSRF token's derivation, the password hash."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.console.passwords import hash_password, verify_password
from service.console.sessions import CookiePolicy, csrf_matches, csrf_token
from service.console.web import safe_next, when
from service.settings import Settings


@pytest.mark.parametrize(
    ("public_url", "secure"),
    [
        ("http://127.0.0.1:8080", False),
        ("http://localhost:8080", False),
        ("http://[::1]:8080", False),
        ("http://127.0.0.2", False),
        ("http://peerlink.example.org", True),  # plain http elsewhere: the cookie stays Secure (and unusable)
        ("http://10.0.0.5:8080", True),
        ("https://peerlink.example.org", True),
        ("https://127.0.0.1:8443", True),
    ],
)
def test_cookies_are_secure_unless_http_on_loopback(public_url, secure):
    policy = CookiePolicy.of(Settings(public_url=public_url))
    assert policy.secure is secure
    assert policy.name("peerlink-console") == ("__Host-peerlink-console" if secure else "peerlink-console")
    assert policy.attributes(60) == {"httponly": True, "samesite": "lax", "secure": secure, "path": "/", "max_age": 60}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/console/program/referrals?x=1", "/console/program/referrals?x=1"),
        ("/console/", "/console/"),
        ("https://evil.example/console", "/console/"),
        ("//evil.example/console", "/console/"),
        ("/console\\@evil.example", "/console/"),
        ("/console/\r\nSet-Cookie: x=1", "/console/"),
        ("/admin/v1/ehr-connections", "/console/"),
        ("", "/console/"),
        (None, "/console/"),
    ],
)
def test_sign_in_sends_the_browser_only_inside_the_console(target, expected):
    assert safe_next(target) == expected


def test_moments_read_in_utc():
    assert when("2026-12-06T12:21:42.368045+00:00") == "2026-12-06 12:21 UTC"
    assert when(datetime(2026, 12, 6, 13, 5, tzinfo=UTC)) == "2026-12-06 13:05 UTC"
    assert when(None) == "—" and when(None, "never") == "never"


def test_the_csrf_token_is_bound_to_the_cookie():
    assert csrf_matches("cookie-a", csrf_token("cookie-a"))
    assert not csrf_matches("cookie-b", csrf_token("cookie-a"))
    assert not csrf_matches(None, csrf_token("cookie-a")) and not csrf_matches("cookie-a", None)
    assert csrf_token("cookie-a") != "cookie-a" and len(csrf_token("cookie-a")) == 64


def test_passwords_are_argon2id_and_at_least_12_characters():
    with pytest.raises(ValueError, match="at least 12"):
        hash_password("short")
    stored = hash_password("a long enough passphrase")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "a long enough passphrase")
    assert not verify_password(stored, "a long enough passphrasE")
    assert not verify_password(None, "anything at all here")
    assert not verify_password("not-a-hash", "anything at all here")
