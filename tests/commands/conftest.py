import pytest

from tests.support.mosquitto import Mosquitto


class LoggingMosquitto(Mosquitto):
    """Mosquitto that logs connections and every SUBSCRIBE, so a test can tell who subscribed."""

    def __init__(self) -> None:
        super().__init__(extra="log_type subscribe\nlog_type unsubscribe\nlog_type notice\nconnection_messages true\n")

    def log_text(self) -> str:
        return (self.dir / "mosquitto.log").read_text(errors="replace")


@pytest.fixture
def mosquitto():
    with LoggingMosquitto() as m:
        yield m
