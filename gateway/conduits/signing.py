"""Keys for the one-way conduits. Courier: Ed25519, the field side signs, the control side only verifies.
Diode: a shared HMAC secret (``load_mac_key``; see gateway/conduits/diode.py for why).

A shared HMAC secret would let whoever imports bundles forge them; with a key pair the
control side holds only the public key. Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo
public) read byte for byte (never stripped); ``keygen`` writes a pair, the private one 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.conduits.records import KeyError_

SIGNATURE_BYTES = 64
_HOWTO = "create a pair with: python -m gateway.conduits.run keygen PRIVATE.pem PUBLIC.pem"


def keygen(private_path: str | Path, public_path: str | Path) -> None:
    """Write a new key pair; refuses to overwrite either file."""
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for path, data, mode in ((Path(private_path), priv, 0o600), (Path(public_path), pub, 0o644)):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except FileExistsError:
            raise KeyError_(f"{path}: exists; keygen never overwrites a key (move it away first)") from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def _read(path: str | Path) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise KeyError_(f"{p}: key file not found; {_HOWTO}") from None
    except OSError as e:
        raise KeyError_(f"{p}: cannot read the key ({e.strerror})") from None


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """The field side's private key (PEM)."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyError_(f"{path}: not an unencrypted PEM private key; {_HOWTO}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_(f"{path}: a {type(key).__name__}, not an Ed25519 key; {_HOWTO}")
    return key


def load_verify_key(path: str | Path) -> Ed25519PublicKey:
    """The control side's public key (PEM). A private key here is refused: the control side must not be able to sign."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        raise KeyError_(f"{path}: is a private key; give the control side only the public key ({_HOWTO})")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise KeyError_(f"{path}: not a PEM public key; {_HOWTO}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyError_(f"{path}: a {type(key).__name__}, not an Ed25519 key; {_HOWTO}")
    return key


MIN_MAC_KEY = 32


def load_mac_key(path: str | Path) -> bytes:
    """A shared secret for the diode's HMAC (both ends hold it), read byte for byte: never stripped,
    so a binary key keeps every byte (a trailing 0x0a or 0x20 is key material)."""
    data = _read(path)
    if len(data) < MIN_MAC_KEY:
        raise KeyError_(f"{path}: key is {len(data)} bytes; use at least {MIN_MAC_KEY} (head -c 32 /dev/urandom > {path})")
    return data


def verifies(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
