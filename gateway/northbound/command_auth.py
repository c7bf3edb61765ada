"""Signed command requests: Ed25519, one public key per operator in the site file.

Where ``gateway.northbound.command_keys`` lists keys, a request is an envelope
``{"request": "<the request JSON, as a string>", "signature": "<base64 Ed25519 signature>"}``
and the signature covers ``b"gridgate-command-v1\\n" + topic + b"\\n" + request`` — the exact
bytes, so no JSON canonicalisation can differ between signer and gateway, and the topic (gateway,
mRID) is bound too: a request signed for one point cannot be replayed on another. The
request's own ``id`` and ``issued`` keep the duplicate and TTL checks against replays in time.
The gateway holds only public keys: it can check an operator, never impersonate one.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.site.options import ed25519_public_bytes

DOMAIN = b"gridgate-command-v1\n"


class SignatureRefused(ValueError):
    """The envelope is well formed but its signature does not make the operator's request."""


def public_key(b64: str, where: str) -> Ed25519PublicKey:
    """A site-file key: base64 of the raw 32-byte Ed25519 public key (checked by the site model)."""
    return Ed25519PublicKey.from_public_bytes(ed25519_public_bytes(b64, where))


def command_keys(site_keys: dict[str, str]) -> dict[str, Ed25519PublicKey]:
    """``gateway.northbound.command_keys`` of the site file, loaded."""
    return {op: public_key(k, f"gateway.northbound.command_keys.{op}") for op, k in site_keys.items()}


def signed_bytes(topic: str, request: str) -> bytes:
    return DOMAIN + topic.encode() + b"\n" + request.encode()


def verify(keys: dict[str, Ed25519PublicKey], topic: str, operator: str, request: str, signature: str) -> None:
    """Raises SignatureRefused unless ``operator``'s key signed ``request`` for ``topic``."""
    key = keys.get(operator)
    if key is None:
        raise SignatureRefused(f"no public key for operator {operator!r} in gateway.northbound.command_keys")
    try:
        sig = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused("signature is not base64") from None
    if len(sig) != 64:
        raise SignatureRefused(f"signature is {len(sig)} bytes; Ed25519 signatures are 64")
    try:
        key.verify(sig, signed_bytes(topic, request))
    except InvalidSignature:
        raise SignatureRefused(f"signature does not verify with operator {operator!r}'s key for this topic") from None


def sign(private: Ed25519PrivateKey, topic: str, request: str) -> dict[str, str]:
    """The envelope a control room sends (used by tests and tooling)."""
    return {"request": request, "signature": base64.b64encode(private.sign(signed_bytes(topic, request))).decode()}
