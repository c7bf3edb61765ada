"""A second, different site (the command test site: Modbus meter/RTU, DNP3 RTU, IEC 61850 IED, two
breakers in one bay, a gateway-only point) renders without drawing, and a tap changer is operated
from the page."""

from __future__ import annotations

import contextlib

import pytest

from gateway.hmi.server import HmiServer
from gateway.hmi.site import site_description
from tests.commands.site import lab
from tests.hmi.support import LoopThread, WsMosquitto, chromium, console_errors, quit_chromium, wait_until

pytestmark = pytest.mark.slow


def test_second_site_lays_out_and_a_tap_changer_is_operated(tmp_path):
    from selenium.webdriver.common.by import By

    loop = LoopThread()
    stack = contextlib.AsyncExitStack()
    driver = None
    with WsMosquitto() as mosq:
        try:
            L = loop.run(stack.enter_async_context(lab(mosq.url, mosq.port)))
            hmi = loop.run(HmiServer(site_description(L.gw_cfg, mosq.ws_url), "127.0.0.1", 0).start())
            stack.push_async_callback(hmi.stop)
            driver = chromium(tmp_path)
            driver.get(hmi.url)
            js = driver.execute_script
            want = {"T1/CB", "T2/CB", "F1/CB1", "F1/CB2", "F2/CB", "F2/CB9"}

            def drawn():
                st = js("return Object.fromEntries([...document.querySelectorAll('g.breaker')].map(g => [g.dataset.bay + '/' + g.dataset.eq, g.dataset.state]))")
                return st if set(st) == want and st["F1/CB1"] != "unknown" and st["F2/CB"] != "unknown" else None

            try:
                states = wait_until(drawn, 60, "the second site's breakers")
            except AssertionError as e:
                raise AssertionError(f"{e}; page shows {js('return Object.fromEntries([...document.querySelectorAll(`g.breaker`)].map(g => [g.dataset.bay + `/` + g.dataset.eq, g.dataset.state]))')}; "
                                     f"log {driver.get_log('browser')[:3]}") from None
            assert states["F1/CB1"] == "open" and states["F2/CB"] == "open" and states["T1/CB"] == "open"  # initial 1 = open
            assert js("return [...document.querySelectorAll('g.transformer')].map(g => g.dataset.bay)") == ["T1", "T2"]
            assert sorted(js("return [...document.querySelectorAll('path.arrow')].map(p => p.dataset.bay)")) == ["F1", "F2"]
            boxes = js("return [...document.querySelectorAll('g.breaker')].map(g => {const r = g.getBoundingClientRect(); return [r.x, r.y]})")
            assert len({(round(x), round(y)) for x, y in boxes}) == len(boxes), "no two breakers drawn on top of each other"
            # the Modbus tap changer (direct command): click the tap position, set 12, select, execute
            tap = L.mrid("mb1", "TAP")
            wait_until(lambda: js(f"return document.querySelector(\"text.tap[data-mrid='{tap}']\").textContent") == "tap 9", 30, "tap 9")
            driver.find_element(By.CSS_SELECTOR, f"text.tap[data-mrid='{tap}']").click()
            wait_until(lambda: driver.find_element(By.ID, "sbo").is_displayed(), 10, "control dialog")
            assert not driver.find_element(By.ID, "sbo-states").is_displayed()
            driver.find_element(By.ID, "sbo-operator").send_keys("alice")
            sp = driver.find_element(By.ID, "sbo-setpoint")
            sp.clear()
            sp.send_keys("12")
            driver.find_element(By.ID, "sbo-select").click()
            driver.find_element(By.ID, "sbo-execute").click()
            status = wait_until(lambda: driver.find_element(By.ID, "sbo-result").get_attribute("data-status"), 30, "tap result")
            assert status == "done", driver.find_element(By.ID, "sbo-result").text
            driver.find_element(By.ID, "sbo-cancel").click()
            wait_until(lambda: js(f"return document.querySelector(\"text.tap[data-mrid='{tap}']\").textContent") == "tap 12", 30, "tap 12 on screen")
            assert L.state("mb1", "TAP") == 12
            driver.save_screenshot(str(tmp_path / "second-site.png"))
            assert console_errors(driver) == []
        finally:
            if driver is not None:
                quit_chromium(driver)
            loop.run(stack.aclose())
            loop.close()
