"""The gateway's token-signing keys, kept in ``KEYS_DIR/signing-keys.json`` (a mounted secret in
production, never in the image).

The newest key signs; every key in the file verifies. ``rotate`` adds a key and retires the one
signing until then: a retired key stays (its tokens verify) until the longest token lifetime has
passed, then the next rotation drops it. Replicas sharing the folder pick changes up within a second.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from joserfc.jwk import KeySet, RSAKey

SIGNING_ALG = "RS256"
"""Access tokens are RFC 9068 JWTs; RS256 is what every resource server and JWT library verifies."""
FILE_NAME = "signing-keys.json"
RETIRED_KEY_GRACE_SECONDS = 3600 + 60
"""A retired key outlives the longest token it can have signed (the lifetime is capped at an hour)."""


def _new_key() -> dict[str, Any]:
    key = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex, "alg": SIGNING_ALG, "use": "sig"})
    return {"jwk": key.as_dict(private=True), "created": int(time.time()), "retired": None}


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (atomically: replicas never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


class SigningKeys:
    def __init__(self, keys_dir: Path) -> None:
        self.path = keys_dir / FILE_NAME
        self._entries: list[dict[str, Any]] = []
        self._stamp: tuple[float, int] | None = None
        self._checked = 0.0
        self._key_set: KeySet | None = None
        self._signing: KeySet | None = None

    # --- file ----------------------------------------------------------------------------------------
    def ensure(self) -> None:
        """Create the file with one key if there is none. Replicas starting together on an empty folder
        agree: the file is linked into place only if absent, so the first one's key is everyone's."""
        if self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        candidate = self.path.with_suffix(f".{os.getpid()}.{uuid.uuid4().hex}.tmp")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps({"keys": [_new_key()]}, option=orjson.OPT_INDENT_2))
        try:
            os.link(candidate, self.path)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()

    def rotate(self, now: float | None = None) -> str:
        """Add a signing key; retire the current one; drop keys retired long enough ago. Returns the new kid."""
        now = now or time.time()
        entries = self._read() if self.path.exists() else []
        for entry in entries:
            entry["retired"] = entry["retired"] or int(now)
        entries = [e for e in entries if now - e["retired"] < RETIRED_KEY_GRACE_SECONDS]
        fresh = _new_key()
        self._save([*entries, fresh])
        kid: str = fresh["jwk"]["kid"]
        return kid

    def _save(self, entries: list[dict[str, Any]]) -> None:
        write_private(self.path, orjson.dumps({"keys": entries}, option=orjson.OPT_INDENT_2))
        self._stamp = None
        self._checked = 0.0

    def _read(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = orjson.loads(self.path.read_bytes())["keys"]
        return entries

    def _refresh(self) -> None:
        if self._key_set is not None and time.monotonic() - self._checked < 1.0:
            return
        self._checked = time.monotonic()
        stat = self.path.stat()
        stamp = (stat.st_mtime, stat.st_size)
        if stamp == self._stamp and self._key_set is not None:
            return
        entries = self._read()
        if not entries:
            raise RuntimeError(f"{self.path} holds no keys")
        self._entries = entries
        self._key_set = KeySet.import_key_set({"keys": [e["jwk"] for e in entries]})
        self._signing = KeySet.import_key_set({"keys": [entries[-1]["jwk"]]})
        self._stamp = stamp

    # --- use -------------------------------------------------------------------------------------------
    def verifying(self) -> KeySet:
        self._refresh()
        assert self._key_set is not None
        return self._key_set

    def signing(self) -> KeySet:
        """A set holding only the newest key (the signer picks it and names its kid)."""
        self._refresh()
        assert self._signing is not None
        return self._signing

    def public_jwks(self) -> dict[str, Any]:
        return dict(self.verifying().as_dict(private=False))

    def summary(self) -> list[dict[str, Any]]:
        self._refresh()
        return [{"kid": e["jwk"]["kid"], "created": e["created"], "retired": e["retired"]} for e in self._entries]
