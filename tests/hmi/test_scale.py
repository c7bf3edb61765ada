"""10,000 points in the catalog: the page takes them all, draws what fits, reaches the rest by bay,
and keeps the alarm list virtualised (figures: bench/bench_hmi.py)."""

from __future__ import annotations

import pytest

from gateway.hmi.server import HmiServer
from tests.hmi import bigsite
from tests.hmi.support import LoopThread, WsMosquitto, chromium, console_errors, quit_chromium, wait_until

pytestmark = pytest.mark.slow


def test_ten_thousand_points(tmp_path):
    entries = bigsite.catalog(10_000)
    feeders = sorted({e["powerSystemResource"]["bay"] for e in entries if e["powerSystemResource"]["bay"].startswith("F")})
    assert len(entries) == 10_000 and len(feeders) == 400
    loop = LoopThread()
    driver = None
    with WsMosquitto() as mosq:
        try:
            loop.run(bigsite.publish_site(mosq.port, entries), timeout=120)
            hmi = loop.run(HmiServer(bigsite.site_json(mosq.ws_url), "127.0.0.1", 0).start())
            driver = chromium(tmp_path)
            driver.get(hmi.url)
            js = driver.execute_script
            wait_until(lambda: js("const s = window.gridgateHmi; return s.catalog.size === 10000 && s.readings.size === 10000"),
                       120, "10,000 catalog entries and values in the page")
            wait_until(lambda: js("return document.querySelectorAll('g.breaker').length") == 2 + 2 + 1 + 24, 30,
                       "24 of 400 feeders drawn (plus transformers, incomers, bus section)")
            assert "showing 24 of 400 feeders" in js("return document.querySelector('figcaption').textContent")
            assert set(js("return [...document.querySelectorAll('g.breaker')].map(g => g.dataset.state)")) == {"closed"}
            # a feeder that did not fit is reachable by bay
            js("const s = document.getElementById('bay-filter'); s.value = 'F350'; s.dispatchEvent(new Event('change'))")
            wait_until(lambda: js("return document.querySelector(\"g.breaker[data-bay='F350']\") !== null"), 30, "F350 drawn")
            assert js("return document.querySelector(\"g.breaker[data-bay='F350']\").dataset.state") == "closed"
            assert js("return document.querySelectorAll('g.breaker').length") == 2 + 2 + 1 + 1
            # 5,000 alarms (the list's bound): only the rows in view are in the DOM
            js("const s = window.gridgateHmi; for (let i = 0; i < 6000; i++) s.alarms.add({text: `synthetic ${i}`, seq: i, bay: 'F350'});"
               "document.getElementById('bay-filter').dispatchEvent(new Event('change'))")
            rows = wait_until(lambda: js("return document.querySelectorAll('#alarms .alarm').length"), 30, "alarm rows")
            assert js("return window.gridgateHmi.alarms.items.length") == 5000
            assert 5 <= rows <= 120, rows
            js("const b = document.getElementById('alarms'); b.scrollTop = b.scrollHeight")
            wait_until(lambda: "synthetic 1000" in js("return document.getElementById('alarms').textContent"), 10, "scrolled to the oldest")
            driver.save_screenshot(str(tmp_path / "10k.png"))
            assert console_errors(driver) == []
            loop.run(hmi.stop())
        finally:
            if driver is not None:
                quit_chromium(driver)
            loop.close()
