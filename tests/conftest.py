import pytest

from tests.support.mosquitto import Mosquitto


@pytest.fixture
def mosquitto():
    """A fresh Mosquitto on a free 127.0.0.1 port for one test."""
    with Mosquitto() as m:
        yield m
