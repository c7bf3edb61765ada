"""Whether this machine can run the network lab (namespaces, nftables, TUN), as a pytest skip mark."""

import pytest

from devices.netlab.lab import LabUnavailable, check_capabilities


def lab_reason() -> str | None:
    try:
        check_capabilities()
    except LabUnavailable as e:
        return str(e)
    return None


needs_lab = pytest.mark.skipif(lab_reason() is not None, reason=f"network lab unavailable: {lab_reason()}")
