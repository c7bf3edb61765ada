
import pytest

from gateway.pipeline import Backoff
from tests.iec61850.support import IedProcess, ied_device
from tests.support.readings import Sink, running  # noqa: F401 - fixtures' helpers, re-exported


@pytest.fixture
def ied():
    """``ied(**device kwargs)`` → a started IedProcess (stopped after the test)."""
    procs: list[IedProcess] = []

    def make(refuse: bool = False, **kw) -> IedProcess:
        p = IedProcess(ied_device(**kw), refuse=refuse).start()
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.stop()


def fast_backoff() -> Backoff:
    return Backoff(initial=0.2, maximum=0.5)
