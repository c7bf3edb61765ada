"""Browser-test support: the example site (devices + gateway + mimic) on a loop in a thread, a
Mosquitto with a WebSocket listener, and headless Debian Chromium driven by Selenium."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from devices.scenario.ports import with_free_ports
from gateway.config import Config, load_config
from tests.support.mosquitto import Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "configs" / "primary-substation.yaml"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def example_site(commands: bool = True) -> Config:
    """The shipped example site on free loopback ports, with the command path on (points keep their policy)."""
    cfg = with_free_ports(load_config(EXAMPLE))
    data = cfg.model_dump(mode="json")
    data["gateway"]["northbound"]["commands"] = commands
    return Config.model_validate(data)


class WsMosquitto(Mosquitto):
    """Mosquitto with a second listener speaking MQTT over WebSockets on 127.0.0.1 (Debian's build has it;
    ``socket_domain ipv4`` keeps libwebsockets on the given address)."""

    def __init__(self) -> None:
        self.ws_port = free_port()
        # a page subscribing to a gateway gets every retained catalog entry and value in one burst: above
        # Mosquitto's default queue of 1000 per client the rest would be dropped (gateway/hmi/README.md)
        super().__init__(extra=f"max_queued_messages 100000\nlistener {self.ws_port} 127.0.0.1\nprotocol websockets\n"
                               "socket_domain ipv4\n")

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"


class LoopThread:
    """An asyncio loop in a thread, so the synchronous Selenium test can drive async parts."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def chromium(artefacts: Path) -> Any:
    """Headless Debian Chromium via Debian's chromedriver (explicit path: Selenium Manager downloads nothing)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            raise RuntimeError(f"{path} is missing: apt-get install -y chromium chromium-driver (./run setup test does this)")
    profile = tempfile.mkdtemp(prefix="gg-chromium-", dir=artefacts)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1600,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_AVOID_STATS", "true")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager fetch a browser or driver
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    driver._gg_profile = profile  # type: ignore[attr-defined]
    return driver


def quit_chromium(driver: Any) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(getattr(driver, "_gg_profile", ""), ignore_errors=True)


def console_errors(driver: Any) -> list[dict]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def wait_until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll generously (a loaded 2-core machine): return the first truthy result or fail naming what."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Exception as e:  # an element mid-rebuild: try again
            last = e
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
