"""Hand-made JWTs: the forgeries the server must refuse. PyJWT refuses to make most of them (it
will not HMAC with a public key, nor sign `alg: none` with a key), so they are put together
here from base64url pieces."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def enc(obj: dict) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def parts(token: str) -> tuple[dict, dict, bytes]:
    h, p, s = token.split(".")
    return json.loads(unb64(h)), json.loads(unb64(p)), unb64(s)


def unsigned(header: dict, claims: dict) -> str:
    return f"{enc(header)}.{enc(claims)}"


def hs256(header: dict, claims: dict, secret: bytes) -> str:
    head = unsigned({**header, "alg": "HS256"}, claims)
    return f"{head}.{b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())}"


class Attacker:
    """An Ed25519 key the server has never seen."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.x = b64(raw)
        # RFC 7638 thumbprint as the kid, the way a real issuer would name it.
        canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": self.x}, separators=(",", ":"))
        self.kid = b64(hashlib.sha256(canonical.encode()).digest())

    def jwk(self) -> dict:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def sign(self, header: dict, claims: dict) -> str:
        head = unsigned({"typ": "at+jwt", **header, "alg": "EdDSA"}, claims)
        return f"{head}.{b64(self.key.sign(head.encode()))}"


def claims_like(real: dict, **changes) -> dict:
    """Claims shaped like a real token's, fresh, with `changes` applied."""
    now = int(time.time())
    c = {**real, "iat": now, "exp": now + 600, "jti": str(uuid.uuid4())}
    c.update(changes)
    return c
