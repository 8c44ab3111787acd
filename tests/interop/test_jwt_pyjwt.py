"""Test 1: a third-party verifier (PyJWT) accepts Fafnir's access tokens using only the public
JWKS: the key picked by the header's `kid`, EdDSA, issuer, audience and expiry checked."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests
from conftest import AUDIENCE, ISSUER

REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "iat", "exp", "jti"]


def verify_with_pyjwt(fafnir, token: str) -> dict:
    client = jwt.PyJWKClient(fafnir.url("/.well-known/jwks.json"), cache_keys=False)
    key = client.get_signing_key_from_jwt(token)  # chosen by the header's kid
    assert key.key_id == jwt.get_unverified_header(token)["kid"]
    return jwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": REQUIRED_CLAIMS, "verify_exp": True, "verify_iat": True},
        leeway=5,
    )


def check_access_token(fafnir, token: str, user_id: str) -> None:
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    assert header.get("kid"), header
    claims = verify_with_pyjwt(fafnir, token)
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE or claims["aud"] == [AUDIENCE]
    assert claims["sub"] == user_id
    assert str(uuid.UUID(claims["sub"])) == claims["sub"], "sub is a UUID"
    assert claims["sid"] and claims["jti"]
    now = time.time()
    assert claims["iat"] <= now + 5
    assert now < claims["exp"] <= claims["iat"] + 24 * 3600


def test_jwks_publishes_ed25519_keys(fafnir):
    r = requests.get(fafnir.url("/.well-known/jwks.json"), timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    keys = r.json()["keys"]
    assert keys, "the JWKS is empty"
    for k in keys:
        assert k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["kid"], k
        assert "d" not in k, "a private key is published"
        # PyJWT can parse every published key.
        assert jwt.PyJWK(k).algorithm_name == "EdDSA"


def test_pyjwt_verifies_password_grant_token(fafnir, admin):
    check_access_token(fafnir, admin.token, admin.id)


def test_pyjwt_verifies_login_cookie_token(fafnir, alice):
    r = requests.post(fafnir.url("/auth/login"), json={"email": alice.email, "password": alice.password}, timeout=30)
    assert r.status_code == 200, r.text
    token = r.cookies.get("fafnir_access")
    assert token, r.headers.get("set-cookie")
    check_access_token(fafnir, token, alice.id)


def test_pyjwt_refuses_other_audience_and_issuer(fafnir, admin):
    """A control: the claims PyJWT checks above are really checked."""
    client = jwt.PyJWKClient(fafnir.url("/.well-known/jwks.json"), cache_keys=False)
    key = client.get_signing_key_from_jwt(admin.token)
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(admin.token, key, algorithms=["EdDSA"], audience="someone-else", issuer=ISSUER)
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(admin.token, key, algorithms=["EdDSA"], audience=AUDIENCE, issuer="https://evil.test")
