"""JWTs of trusted issuers: RS256 and ES256 through a JWKS copied into the store and through a JWKS
URL on 127.0.0.1; then every way a JWT is refused, each with its exact error."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from jwt_issuer import AUD, ISS, Key, ec_key, jwks, jwks_server, rsa_key, sign, unsigned

from dss_remote.access import issuers
from dss_remote.access.gate import AuthenticationError, Identity
from dss_remote.access.issuers import Issuer, make_issuer
from dss_remote.access.jwts import JwtVerifier
from dss_remote.access.store_gate import StoreGate
from ria_store.errors import ConfigError

RSA = rsa_key()
EC = ec_key()
ADA = Identity("ada@example.org", frozenset({"lab"}), "jwt")


def _inline(*keys: Key, **over: str) -> dict[str, Issuer]:
    return {ISS: make_issuer(ISS, AUD, jwks=jwks(*keys), **over)}


def _refused(token: str, trusted: dict[str, Issuer] | None = None) -> str:
    with pytest.raises(AuthenticationError) as e:
        JwtVerifier().verify(token, trusted if trusted is not None else _inline(RSA, EC))
    return str(e.value)


@pytest.mark.parametrize("key", [RSA, EC], ids=["RS256", "ES256"])
def test_a_jwt_signed_by_a_key_of_the_jwks_file_is_its_user(store: Path, tmp_path: Path, key: Key) -> None:
    f = tmp_path / "jwks.json"
    f.write_text(json.dumps(jwks(RSA, EC)))
    issuers.add(store, make_issuer(ISS, AUD, jwks=issuers.read_jwks_file(f)))
    f.unlink()  # copied into the store: the store needs nothing outside itself
    assert StoreGate(store).identify(f"Bearer {sign(key)}") == ADA


@pytest.mark.parametrize("key", [RSA, EC], ids=["RS256", "ES256"])
def test_a_jwt_signed_by_a_key_at_the_jwks_url_is_its_user(store: Path, key: Key) -> None:
    with jwks_server(jwks(RSA, EC)) as srv:
        issuers.add(store, make_issuer(ISS, AUD, jwks_uri=srv.url))
        gate = StoreGate(store)
        assert gate.identify(f"Bearer {sign(key)}") == ADA
        assert gate.identify(f"Bearer {sign(key, sub='other')}") == ADA
        assert srv.hits == ["/jwks.json"], "the key set is cached"


def test_a_rotated_key_is_fetched_when_its_kid_is_new(store: Path) -> None:
    new = rsa_key("rsa-2")
    with jwks_server(jwks(RSA)) as srv:
        trusted = {ISS: make_issuer(ISS, AUD, jwks_uri=srv.url)}
        verifier = JwtVerifier(refetch_cooldown=0)
        assert verifier.verify(sign(RSA), trusted) == ADA
        srv.doc["keys"] = jwks(RSA, new)["keys"]
        assert verifier.verify(sign(new), trusted) == ADA
        assert srv.hits == ["/jwks.json", "/jwks.json"]


def test_unknown_kids_do_not_make_the_server_refetch_within_the_cooldown(store: Path) -> None:
    stranger = rsa_key("nobody")
    with jwks_server(jwks(RSA)) as srv:
        trusted = {ISS: make_issuer(ISS, AUD, jwks_uri=srv.url)}
        verifier = JwtVerifier()
        verifier.verify(sign(RSA), trusted)
        for _ in range(5):
            with pytest.raises(AuthenticationError) as e:
                verifier.verify(sign(stranger), trusted)
            assert str(e.value).startswith("JWT key id 'nobody' is not among the keys of issuer")
        assert srv.hits == ["/jwks.json"]


def test_an_unknown_kid_at_the_jwks_url_is_named(store: Path) -> None:
    with jwks_server(jwks(RSA)) as srv:
        message = _refused(sign(rsa_key("rsa-9")), {ISS: make_issuer(ISS, AUD, jwks_uri=srv.url)})
    assert message == (f"JWT key id 'rsa-9' is not among the keys of issuer {ISS}; sign in again, or "
                       "ask an admin to update the issuer's JWKS")


def test_a_jwks_url_that_is_down_is_named_with_its_cause() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/jwks.json"
    message = _refused(sign(RSA), {ISS: make_issuer(ISS, AUD, jwks_uri=url)})
    assert message.startswith(f"cannot fetch the keys of issuer {ISS} from {url}: ")
    assert "Connection refused" in message
    assert message.endswith("; try again later or ask an admin to check the issuer's jwks_uri")


def test_a_jwks_url_answering_404_is_named() -> None:
    with jwks_server(jwks(RSA)) as srv:
        url = srv.url.replace("/jwks.json", "/other")
        message = _refused(sign(RSA), {ISS: make_issuer(ISS, AUD, jwks_uri=url)})
    assert message.startswith(f"cannot fetch the keys of issuer {ISS} from {url}: ")
    assert ": HTTP 404 Not Found;" in message


def test_an_expired_jwt_is_refused() -> None:
    exp = int(time.time()) - 61
    message = _refused(sign(RSA, exp=exp, iat=exp - 600))
    assert message.startswith(f"JWT of issuer {ISS} expired at ")
    assert message.endswith("; sign in again")


def test_a_jwt_expired_within_the_leeway_passes() -> None:
    assert JwtVerifier().verify(sign(RSA, exp=int(time.time()) - 30), _inline(RSA)) == ADA


def test_a_jwt_without_exp_is_refused() -> None:
    assert _refused(sign(RSA, exp=None)) == (f"JWT of issuer {ISS} lacks the 'exp' claim; ask the issuer "
                                             "for a token with an expiry and audience")


def test_a_jwt_for_another_audience_is_refused() -> None:
    assert _refused(sign(RSA, aud="https://other.example.org")) == (
        f"JWT audience 'https://other.example.org' is not '{AUD}', the audience issuer {ISS} is trusted "
        "for; request a token for that audience")


def test_a_jwt_of_an_untrusted_issuer_is_refused() -> None:
    assert _refused(sign(RSA, iss="https://evil.example.com/")) == (
        "JWT issuer 'https://evil.example.com/' is not trusted by this store; an admin adds it with "
        "`dss auth issuer add`")


def test_a_jwt_without_an_issuer_is_refused() -> None:
    assert _refused(sign(RSA, iss=None)) == (
        "JWT issuer None is not trusted by this store; an admin adds it with `dss auth issuer add`")


def test_a_jwt_with_alg_none_is_refused() -> None:
    token = unsigned({"alg": "none", "typ": "JWT", "kid": RSA.kid}, {"iss": ISS, "aud": AUD, "sub": "x",
                                                                     "exp": int(time.time()) + 600})
    assert _refused(token) == ("JWT algorithm 'none' is not accepted (only RS256, ES256); ask the issuer "
                               "for an RS256 or ES256 token")


def test_a_jwt_hs256_signed_with_the_public_key_is_refused() -> None:
    payload = {"iss": ISS, "aud": AUD, "sub": "x", "exp": int(time.time()) + 600}
    token = unsigned({"alg": "HS256", "typ": "JWT", "kid": RSA.kid}, payload, secret=RSA.public_pem())
    assert _refused(token) == ("JWT algorithm 'HS256' is not accepted (only RS256, ES256); ask the "
                               "issuer for an RS256 or ES256 token")


def test_a_jwt_whose_alg_does_not_fit_its_key_is_refused() -> None:
    ec_as_rsa_kid = ec_key(RSA.kid)
    assert _refused(sign(ec_as_rsa_kid)) == (
        f"JWT algorithm ES256 does not fit key '{RSA.kid}' of issuer {ISS} (RS256); the token is forged "
        "or damaged")


def test_a_jwt_signed_by_another_key_with_a_known_kid_is_refused() -> None:
    assert _refused(sign(rsa_key(RSA.kid))) == (
        f"JWT signature does not verify with key '{RSA.kid}' of issuer {ISS}; the token is forged or damaged")


def test_a_jwt_with_an_unknown_kid_in_the_jwks_file_is_refused() -> None:
    assert _refused(sign(rsa_key("rsa-7"))) == (
        f"JWT key id 'rsa-7' is not among the keys of issuer {ISS}; sign in again, or ask an admin to "
        "update the issuer's JWKS")


def test_a_jwt_without_a_kid_is_refused() -> None:
    import jwt as pyjwt
    from jwt_issuer import claims
    token = pyjwt.encode(claims(), RSA.private, algorithm="RS256")
    assert _refused(token) == (f"JWT of issuer {ISS} has no `kid` header, so its key cannot be chosen; "
                               "ask the issuer to name the key")


def test_a_jwt_not_valid_yet_is_refused() -> None:
    assert _refused(sign(RSA, nbf=int(time.time()) + 3600)) == (
        f"JWT of issuer {ISS} is not valid yet (nbf in the future); check the clocks")


def test_a_jwt_issued_in_the_future_is_refused() -> None:
    assert _refused(sign(RSA, iat=int(time.time()) + 3600)) == (
        f"JWT of issuer {ISS} is not valid yet (iat in the future); check the clocks")


def test_a_jwt_with_nbf_and_iat_within_the_leeway_passes() -> None:
    soon = int(time.time()) + 30
    assert JwtVerifier().verify(sign(RSA, nbf=soon, iat=soon), _inline(RSA)) == ADA


@pytest.mark.parametrize("garbage", ["a.b.c", "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "x.y."])
def test_a_garbage_jwt_is_refused(garbage: str) -> None:
    message = _refused(garbage)
    assert message.startswith("the Bearer credential is not a well-formed JWT (")
    assert message.endswith("); send a dss token or a JWT from a trusted issuer")


def test_the_user_is_the_email_claim_else_sub() -> None:
    v = JwtVerifier()
    assert v.verify(sign(RSA, email=None), _inline(RSA)).user == "auth0|42"
    trusted = _inline(RSA, email_claim="preferred_username")
    assert v.verify(sign(RSA, preferred_username="ada"), trusted).user == "ada"


def test_a_jwt_naming_nobody_is_refused() -> None:
    assert _refused(sign(RSA, email=None, sub=None)) == (
        f"JWT of issuer {ISS} names nobody (no 'email' or `sub` claim)")


def test_groups_come_from_a_string_or_a_list_claim_as_the_hca_client_sends() -> None:
    hca = "https://auth.data.humancellatlas.org/group"
    trusted = _inline(RSA, groups_claim=hca)
    v = JwtVerifier()
    assert v.verify(sign(RSA, **{hca: "hca"}), trusted).groups == {"hca"}
    assert v.verify(sign(RSA, **{hca: ["a", "b"]}), trusted).groups == {"a", "b"}
    assert v.verify(sign(RSA), trusted).groups == frozenset()


# -- the issuers file

def test_issuers_add_replace_list_and_remove(store: Path) -> None:
    assert issuers.add(store, make_issuer(ISS, AUD, jwks_uri="https://login.example.org/jwks"))
    assert not issuers.add(store, make_issuer(ISS, "other", jwks=jwks(RSA)))
    loaded = issuers.load(store)
    assert list(loaded) == [ISS] and loaded[ISS].audience == "other" and loaded[ISS].jwks_uri is None
    assert loaded[ISS].summary()["jwks"] == {"kids": [RSA.kid]}
    issuers.remove(store, ISS)
    assert issuers.load(store) == {}


def test_removing_an_unknown_issuer_is_named(store: Path) -> None:
    with pytest.raises(FileNotFoundError) as e:
        issuers.remove(store, "https://nobody/")
    assert str(e.value) == (f"issuer 'https://nobody/' is not trusted by store {store}; list them with "
                            "`dss auth issuer list`")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"issuer": "", "audience": AUD, "jwks_uri": "https://x/j"}, "issuer must not be empty"),
    ({"issuer": ISS, "audience": "", "jwks_uri": "https://x/j"}, f"issuer {ISS}: audience must not be empty"),
    ({"issuer": ISS, "audience": AUD}, f"issuer {ISS}: give exactly one of jwks_uri"),
    ({"issuer": ISS, "audience": AUD, "jwks_uri": "https://x/j", "jwks": {"keys": []}},
     f"issuer {ISS}: give exactly one of jwks_uri"),
    ({"issuer": ISS, "audience": AUD, "jwks_uri": "file:///etc/jwks"},
     f"issuer {ISS}: jwks_uri 'file:///etc/jwks' is not an http(s) URL"),
    ({"issuer": ISS, "audience": AUD, "jwks": {"keys": []}}, f"issuer {ISS}: jwks is not a JWKS document"),
])
def test_a_bad_issuer_is_named(kwargs: dict[str, object], message: str) -> None:
    iss, aud = kwargs.pop("issuer"), kwargs.pop("audience")
    with pytest.raises(ConfigError) as e:
        make_issuer(str(iss), str(aud), **kwargs)  # type: ignore[arg-type]
    assert str(e.value).startswith(message)


def test_a_jwks_file_that_is_not_jwks_is_named_and_nothing_written(store: Path, tmp_path: Path) -> None:
    f = tmp_path / "jwks.json"
    f.write_text('{"kty": "RSA"}')
    with pytest.raises(ConfigError) as e:
        issuers.read_jwks_file(f)
    assert str(e.value).startswith(f"JWKS file {f} is not a JWKS document")
    assert not (store / "dss/access").exists()


def test_a_jwt_whose_iat_is_not_a_time_is_refused() -> None:
    assert _refused(sign(RSA, iat="yesterday")) == (
        f"JWT of issuer {ISS} has an iat that is not a time (seconds since 1970); the token is damaged")


def test_the_hca_clients_service_account_jwt_is_accepted() -> None:
    """As hca 7.0.1 signs it (reference/hca_client.md): kid = private_key_id, iss = sub = email =
    client_email, the hard-coded audience, the group claim `hca`, float iat and exp."""
    svc = "uploader@project.iam.gserviceaccount.com"
    aud = "https://dev.data.humancellatlas.org/"
    group = "https://auth.data.humancellatlas.org/group"
    key = rsa_key("0123456789abcdef0123456789abcdef01234567")
    now = time.time()
    token = sign(key, iss=svc, sub=svc, email=svc, aud=aud, groups=None, iat=now, exp=now + 3600,
                 **{group: "hca", "https://auth.data.humancellatlas.org/email": svc})
    trusted = {svc: make_issuer(svc, aud, jwks=jwks(key), groups_claim=group)}
    assert JwtVerifier().verify(token, trusted) == Identity(svc, frozenset({"hca"}), "jwt")


def test_a_jwks_url_serving_no_usable_key_is_named() -> None:
    with jwks_server({"keys": [{"kty": "nope", "kid": RSA.kid}]}) as srv:
        message = _refused(sign(RSA), {ISS: make_issuer(ISS, AUD, jwks_uri=srv.url)})
    assert message.startswith(f"the keys at {srv.url} of issuer {ISS} are not a usable JWKS (")
    assert message.endswith("); ask an admin to check the issuer's jwks_uri")
