"""Where the broker is and how to reach it safely: URL parsing and the TLS context."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from gateway.northbound.message import TlsOptions


class NorthboundConfigError(ValueError):
    """A publisher setting that cannot work; the message names the setting and the fix."""


def parse_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` → (host, port, tls)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise NorthboundConfigError(
            f"northbound url {url!r}: expected mqtt://host:port or mqtts://host:port (e.g. mqtt://127.0.0.1:1883)"
        )
    if parts.username or parts.password:
        raise NorthboundConfigError("northbound url: put credentials in username/password, not in the URL (it gets logged)")
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


def ssl_context(tls: TlsOptions) -> ssl.SSLContext:
    """Verifying client context; loads the client certificate for mutual TLS."""
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, name)
        if path is not None and not path.is_file():
            raise NorthboundConfigError(f"northbound tls.{name}: {path} does not exist or is not a file")
    if (tls.cert_file is None) != (tls.key_file is None):
        raise NorthboundConfigError("northbound tls: set both cert_file and key_file for mutual TLS, or neither")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.server_hostname:
        ctx.__class__ = _NamedContext
        ctx.gg_server_hostname = tls.server_hostname  # type: ignore[attr-defined]
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx


class _NamedContext(ssl.SSLContext):
    """Verifies the broker certificate against ``tls.server_hostname`` instead of the URL's host
    (gmqtt connects by address and has no server_hostname argument)."""

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):  # noqa: ANN001
        return super().wrap_bio(incoming, outgoing, server_side, self.gg_server_hostname, session)  # type: ignore[attr-defined]
