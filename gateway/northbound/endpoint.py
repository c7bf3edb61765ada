"""Where the broker is and how to reach it safely: URL parsing and the TLS context."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from gateway.site.options import TlsOptions



class NorthboundConfigError(ValueError):
    """A publisher setting that cannot work; the message names the setting and the fix."""


def parse_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` → (host, port, tls)."""
    expected = "expected mqtt://host:port or mqtts://host:port (e.g. mqtt://127.0.0.1:1883)"
    try:
        parts = urlsplit(url)
        port = parts.port  # urllib checks it only when asked: bad digits or outside 0-65535 raise here
    except ValueError as e:  # urllib's own words ("Invalid IPv6 URL", "Port out of range 0-65535") and ours
        raise NorthboundConfigError(f"northbound url {url!r}: {str(e).rstrip('.')}; {expected}") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise NorthboundConfigError(f"northbound url {url!r}: {expected}")
    if port == 0:
        raise NorthboundConfigError(f"northbound url {url!r}: port 0 is not a broker's port; {expected}")
    if parts.username or parts.password:
        raise NorthboundConfigError("northbound url: put credentials in username/password, not in the URL (it gets logged)")
    tls = parts.scheme == "mqtts"
    return parts.hostname, port or (8883 if tls else 1883), tls


class _NamedServerContext(ssl.SSLContext):
    """A verifying client context that checks the broker certificate against ``server_name`` instead of
    the host it connects to (``tls.server_hostname``: a broker reached by IP whose certificate names
    its DNS name). asyncio passes the connect host as ``server_hostname`` to ``wrap_bio``; this swaps it."""

    server_name: str = ""

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):  # noqa: ANN001, ANN201
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name or server_hostname, session)


def ssl_context(tls: TlsOptions) -> ssl.SSLContext:
    """Verifying client context; loads the client certificate for mutual TLS."""
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, name)
        if path is not None and not path.is_file():
            raise NorthboundConfigError(f"northbound tls.{name}: {path} does not exist or is not a file")
    if (tls.cert_file is None) != (tls.key_file is None):
        raise NorthboundConfigError("northbound tls: set both cert_file and key_file for mutual TLS, or neither")
    ctx: ssl.SSLContext
    if tls.server_hostname:
        ctx = _NamedServerContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.server_name = tls.server_hostname
        if tls.ca_file:
            ctx.load_verify_locations(cafile=str(tls.ca_file))
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file) if tls.ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx
