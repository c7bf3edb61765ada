"""The mimic in a real headless Chromium against the example site: emulated devices, the gateway,
Mosquitto's WebSocket listener, the page's own MQTT client. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.emulator import Emulator
from devices.faultapi.client import FaultClient
from devices.faultapi.server import FaultApiServer
from devices.scenario.inject import Injector
from gateway.app import Gateway, GatewayOptions
from gateway.hmi.server import HmiServer
from gateway.hmi.site import site_description
from tests.hmi.support import LoopThread, WsMosquitto, chromium, console_errors, example_site, quit_chromium, wait_until
from tests.support.mqtt import Collector

pytestmark = pytest.mark.slow
BREAKERS = {"T1": "HVCB", "T2": "HVCB", "INC1": "CB", "INC2": "CB", "BS": "CB",
            "F1": "CB", "F2": "CB", "F3": "CB", "F4": "CB", "F5": "CB", "F6": "CB"}
POSITION = {0: "intermediate", 1: "open", 2: "closed", 3: "bad"}


class Stack:
    def __init__(self, artefacts: Path) -> None:
        self.artefacts = artefacts
        self.cfg = example_site(commands=True)
        self.mosq = WsMosquitto().start()
        self.loop = LoopThread()
        try:
            self.loop.run(self._start())
            self.driver = chromium(artefacts)
        except BaseException:  # a failed start leaves no broker, devices or gateway behind
            try:
                self.loop.run(self._stop())
            except Exception:  # noqa: BLE001 - half-started: stop what started, report the original error
                pass
            self.loop.close()
            self.mosq.stop()
            raise

    async def _start(self) -> None:
        self.emu = Emulator(self.cfg, seed=0)
        await self.emu.start()
        self.injector = Injector(self.emu)
        self.faultapi = await FaultApiServer(self.injector, state_file=self.artefacts / "faultapi.json").start()
        self.faults = FaultClient(self.faultapi.url, self.faultapi.token)
        self.gw = Gateway(self.cfg, GatewayOptions(broker=self.mosq.url, protocol="5", status_interval=2.0))
        await self.gw.start()
        self.hmi = await HmiServer(site_description(self.cfg, self.mosq.ws_url), "127.0.0.1", 0).start()
        self.mqtt = Collector(self.mosq.port, [f"gridgate/v1/{self.cfg.gateway.id}/#"])
        await self.mqtt.__aenter__()

    async def _stop(self) -> None:
        """Stop what started (also after a start that failed half-way)."""
        if getattr(self, "mqtt", None) is not None:
            await self.mqtt.__aexit__()
        if getattr(self, "hmi", None) is not None:
            await self.hmi.stop()
        if getattr(self, "faultapi", None) is not None:
            await self.faultapi.stop()
        if getattr(self, "gw", None) is not None:
            await self.gw.stop()
        if getattr(self, "emu", None) is not None:
            await self.emu.stop()

    def close(self) -> None:
        try:
            quit_chromium(self.driver)
        finally:
            try:
                self.loop.run(self._stop())
            finally:
                self.loop.close()
                self.mosq.stop()

    # --- what the page shows
    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def breaker_states(self) -> dict[str, str]:
        return self.js("return Object.fromEntries([...document.querySelectorAll('g.breaker')]"
                       ".map(g => [g.dataset.bay + '/' + g.dataset.eq, g.dataset.state]))")

    def value_of(self, mrid: str) -> dict | None:
        return self.js("const t = document.querySelector(`text.val[data-mrid='${arguments[0]}']`);"
                       "return t ? {text: t.textContent, quality: t.dataset.quality} : null", mrid)

    def bay_live(self, bay: str) -> list[str]:
        return self.js("return [...document.querySelectorAll(`[data-live][data-bay='${arguments[0]}']`)].map(e => e.dataset.live)", bay)

    def alarms_text(self) -> list[str]:
        return self.js("return window.gridgateHmi.alarms.view('').map(a => a.text)")

    def mrid(self, device: str, point: str) -> str:
        d = next(x for x in self.cfg.devices if x.name == device)
        return str(self.cfg.measurement_mrid(next(p for p in d.points if p.name == point)))

    def values(self, mrid: str) -> list[dict]:
        """Every well-formed value of one measurement seen on MQTT, oldest first."""
        out = []
        for m in list(self.mqtt.messages):
            if "/meas/" in m.topic:
                try:
                    body = m.json
                except ValueError:
                    continue
                if isinstance(body, dict) and body.get("measurement", {}).get("mRID") == mrid:
                    out.append(body)
        return out

    def published(self, mrid: str) -> dict | None:
        vs = self.values(mrid)
        return vs[-1] if vs else None

    def shot(self, name: str) -> Path:
        p = self.artefacts / f"{name}.png"
        self.driver.save_screenshot(str(p))
        return p


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("hmi-artefacts"))
    try:
        s.driver.get(s.hmi.url)
        yield s
    finally:
        s.close()


def test_page_shows_every_breaker_with_the_published_position(stack):
    def all_drawn():
        st = stack.breaker_states()
        return st if all(st.get(f"{b}/{e}") not in (None, "unknown") for b, e in BREAKERS.items()) else None

    states = wait_until(all_drawn, 60, "all breakers of the example site drawn with a position")
    for bay, eq in BREAKERS.items():
        mrid = stack.js(f"return document.querySelector(\"g.breaker[data-bay='{bay}'][data-eq='{eq}']\").dataset.mrid")
        pub = wait_until(lambda: stack.published(mrid), 30, f"{bay}/{eq} position on MQTT")
        assert states[f"{bay}/{eq}"] == POSITION[pub["value"]], (bay, pub)
    assert stack.js("return document.getElementById('gw-state').dataset.state") == "online"
    assert stack.js("return document.getElementById('broker-state').dataset.state") == "connected"
    assert wait_until(lambda: stack.js("return document.getElementById('devices-state').textContent"), 20, "devices").startswith("9/9 up")
    assert stack.js("return document.getElementById('control-state').dataset.state") == "available"
    # energised: closed breakers from the source down, F-bays on live sections
    live = stack.js("return [...document.querySelectorAll('[data-live]')].filter(e => e.dataset.live === 'true').length")
    assert live > 8
    stack.shot("01-overview")
    assert console_errors(stack.driver) == []


def test_value_changes_on_screen_after_it_changes_on_mqtt(stack):
    tap = stack.mrid("rtu1", "T1_TAP")
    before = wait_until(lambda: stack.value_of(tap), 30, "T1 tap drawn")
    assert before["text"] == "tap 9" and before["quality"] == "good", before
    stack.loop.run(stack.injector.inject({"point": "rtu1/T1_TAP"}, {"kind": "set_state", "value": 13}))
    wait_until(lambda: (stack.published(tap) or {}).get("value") == 13, 30, "tap 13 on MQTT")
    after = wait_until(lambda: (v := stack.value_of(tap)) and v["text"] == "tap 13" and v, 30, "tap 13 on screen")
    assert after["quality"] == "good"
    # the AVC relay's state next to the tap, in words (docs/avc-state-points.md)
    avc = stack.mrid("rtu1", "T1_AVC_STATE")
    words = {0: "manual", 1: "in band", 2: "timing", 3: "tapping", 4: "locked out", 5: "blocked"}
    wait_until(lambda: (p := stack.published(avc)) and (v := stack.value_of(avc))
               and v["text"] == f"AVC {words[p['value']]}", 30, "T1 AVC state on screen as published")
    # an analogue: the screen shows the last value published for it, with its unit
    ia = stack.mrid("ied-f1", "Ia")

    def ia_as_published():
        v = stack.published(ia)["value"]
        want = f"Ia: {v:.0f} A" if abs(v) >= 100 else f"Ia: {v:.1f} A"
        return stack.value_of(ia)["text"] == want

    wait_until(ia_as_published, 30, "F1 Ia as published")
    assert any("tap 9 → 13" in t for t in stack.alarms_text())


def test_comms_loss_shows_the_points_invalid(stack):
    p = stack.mrid("ied-f3", "P")
    wait_until(lambda: (v := stack.value_of(p)) and v["quality"] == "good", 30, "F3 P good")
    fid = stack.faults.inject({"device": "ied-f3"}, {"kind": "disconnect"})["id"]  # through the fault API (HTTP)
    try:
        wait_until(lambda: stack.value_of(p)["quality"] == "invalid", 60, "F3 P invalid on screen")
        assert stack.breaker_states()["F3/CB"] == "invalid"
        wait_until(lambda: "ied-f3" in stack.js("return document.getElementById('devices-state').textContent"), 30, "ied-f3 down in status bar")
        wait_until(lambda: any("F3/FDR P: quality GOOD → INVALID" in t for t in stack.alarms_text()), 10, "quality alarm")
        wait_until(lambda: any("device ied-f3: comms lost" in t for t in stack.alarms_text()), 10, "comms alarm")
        # F3 alarms filtered by bay
        stack.js("const s = document.getElementById('bay-filter'); s.value = 'F3'; s.dispatchEvent(new Event('change'))")
        rows = lambda: stack.js("return [...document.querySelectorAll('#alarms .alarm')].map(r => r.dataset.bay)")  # noqa: E731
        wait_until(lambda: rows() and set(rows()) == {"F3"}, 10, "only F3 rows")
        stack.shot("02-comms-loss-f3")
        stack.js("const s = document.getElementById('bay-filter'); s.value = ''; s.dispatchEvent(new Event('change'))")
    finally:
        stack.faults.clear(fid)
    wait_until(lambda: stack.value_of(p)["quality"] == "good", 60, "F3 P good again")


def _sbo(stack, bay: str, operator: str, state: str) -> str:
    from selenium.webdriver.common.by import By

    d = stack.driver
    d.find_element(By.CSS_SELECTOR, f"g.breaker[data-bay='{bay}'][data-eq='CB']").click()
    wait_until(lambda: d.find_element(By.ID, "sbo").is_displayed(), 10, "SBO dialog")
    op = d.find_element(By.ID, "sbo-operator")
    op.clear()
    op.send_keys(operator)
    d.find_element(By.ID, "sbo-open" if state == "open" else "sbo-close").click()
    d.find_element(By.ID, "sbo-select").click()
    assert d.find_element(By.ID, "sbo-phase").get_attribute("data-phase") == "selected"
    assert d.find_element(By.ID, "sbo-execute").is_enabled()
    d.find_element(By.ID, "sbo-execute").click()
    return wait_until(lambda: d.find_element(By.ID, "sbo-result").get_attribute("data-status"), 40, f"result of the {bay} command")


def test_sbo_from_the_page_opens_a_feeder_breaker(stack):
    from selenium.webdriver.common.by import By

    wait_until(lambda: stack.breaker_states().get("F2/CB") == "closed", 30, "F2 closed")
    assert set(stack.bay_live("F2")) == {"true"}, "F2 energised before the command"
    status = _sbo(stack, "F2", "control-engineer", "open")
    text = stack.driver.find_element(By.ID, "sbo-result").text
    assert status == "done", text
    stack.shot("03-sbo-done")
    result = wait_until(lambda: [m.json for m in stack.mqtt.on("/cmd/") if m.topic.endswith("/result")], 10, "result on MQTT")
    assert result[-1]["status"] == "done" and result[-1]["operator"] == "control-engineer"
    stack.driver.find_element(By.ID, "sbo-cancel").click()
    wait_until(lambda: stack.breaker_states()["F2/CB"] == "open", 30, "F2 drawn open")
    wait_until(lambda: set(stack.bay_live("F2")) == {"false"}, 10, "F2 drawn de-energised")
    assert set(stack.bay_live("F1")) == {"true"} and set(stack.bay_live("F4")) == {"true"}, "the other feeders stay energised"
    assert any("F2/CB: breaker closed → open" in t for t in stack.alarms_text())
    stack.shot("04-f2-open")


def test_refused_command_shows_its_reason(stack):
    from selenium.webdriver.common.by import By

    status = _sbo(stack, "F4", "intruder", "open")
    text = stack.driver.find_element(By.ID, "sbo-result").text
    assert status == "refused"
    assert "operator_not_allowed" in text and "intruder" in text, text
    stack.shot("05-refused")
    stack.driver.find_element(By.ID, "sbo-cancel").click()
    assert stack.breaker_states()["F4/CB"] == "closed"
    assert any("refused" in t and "F4/CB" in t for t in stack.alarms_text())


def test_malformed_payload_is_a_bad_point_with_its_reason(stack):
    tap = stack.mrid("rtu1", "T2_TAP")
    topic = wait_until(lambda: (stack.published(tap) or {}).get("measurement", {}).get("topic"), 30, "T2 tap topic")
    stack.mqtt.client.publish(topic, b"{not json", qos=1)
    wait_until(lambda: stack.value_of(tap)["quality"] == "bad", 20, "T2 tap shown bad")
    assert any("bad payload — not JSON" in t for t in stack.alarms_text())
    body = json.loads(json.dumps(stack.published(tap)))
    body["value"] = "ten"
    stack.mqtt.client.publish(topic, json.dumps(body).encode(), qos=1)
    wait_until(lambda: any("not a number" in t for t in stack.alarms_text()), 20, "reason of the second bad payload")
    stack.shot("06-bad-payload")
    assert console_errors(stack.driver) == []


def test_trend_opens_for_an_analogue(stack):
    from selenium.webdriver.common.by import By

    ia = stack.mrid("ied-f1", "Ia")
    # the value's text appears with the site's first values: wait for it (the module may start with this test)
    wait_until(lambda: stack.driver.find_element(By.CSS_SELECTOR, f"text.val[data-mrid='{ia}']").click() or True, 30, "F1 Ia on the page")
    n = wait_until(lambda: int(stack.driver.find_element(By.ID, "trend").get_attribute("data-samples") or 0) >= 2, 40, "trend samples")
    assert n
    assert stack.driver.find_element(By.CSS_SELECTOR, "#trend-plot canvas").is_displayed()
    stack.shot("07-trend")
    stack.driver.find_element(By.ID, "trend-close").click()


def test_protection_operate_is_an_alarm_with_a_trip_flag_and_can_be_acknowledged(stack):
    from selenium.webdriver.common.by import By

    op = stack.mrid("ied-f6", "PTOC_Op")
    before = len(stack.values(op))
    # a physical earth fault on F6: the plant model's relay starts, operates and trips the breaker
    fid = stack.faults.inject({"point": "ied-f6/Ia"}, {"kind": "short_circuit", "type": "phase_earth", "impedance": 0.5})["id"]
    try:
        # the operate is a pulse (the breaker clears the fault, the relay resets): look for it among every value since the fault,
        # not only the newest one
        wait_until(lambda: any(v["value"] == 1 for v in stack.values(op)[before:]), 30,
                   f"PTOC_Op 1 on MQTT (values since the fault: {[(v['value'], v['quality']) for v in stack.values(op)[before:]]})")
        flag = "const g = document.querySelector(\"g.prot[data-bay='F6']\"); return [g.dataset.active, g.dataset.latched]"
        wait_until(lambda: stack.js(flag)[0] == "trip", 20, "TRIP flag on F6")
        # the relay resets once the breaker has cleared the fault; the flag stays up (latched) until acknowledged
        wait_until(lambda: (stack.published(op) or {}).get("value") == 0, 30, "PTOC_Op back to 0 (breaker open)")
        assert wait_until(lambda: stack.js(flag) == ["trip", "true"] and stack.js(flag), 10, "latched TRIP on F6") == ["trip", "true"]
        text = wait_until(lambda: next((t for t in stack.alarms_text() if "protection operate" in t and t.startswith("F6/")), None), 10,
                          "protection alarm")
        assert "PTOC_Op" in text
        # what an operator does: F6 only, alarms only
        stack.js("const s = document.getElementById('bay-filter'); s.value = 'F6'; s.dispatchEvent(new Event('change'));"
                 "const c = document.getElementById('only-alarms'); c.checked = true; c.dispatchEvent(new Event('change'))")

        def row():
            return stack.js("const r = [...document.querySelectorAll('#alarms .alarm')].find(r => r.dataset.bay === 'F6' && "
                            "r.children[3].textContent.includes('protection operate'));"
                            "return r ? {cls: r.className, id: r.querySelector('button').dataset.ack, seq: r.children[1].textContent} : null")

        r = wait_until(row, 10, "the protection alarm's row")
        assert "is-alarm" in r["cls"] and "acked" not in r["cls"]
        # the seq of a value that raised it (auto-reclose onto the standing fault may operate the relay again)
        assert int(r["seq"]) in {v["seq"] for v in stack.values(op) if v["value"] == 1}
        unacked = stack.js("return window.gridgateHmi.alarms.unacked()")

        def click_ack():  # rows are redrawn as alarms arrive: find and click in one go, retry if it went stale
            stack.driver.find_element(By.CSS_SELECTOR, f"#alarms button[data-ack='{r['id']}']").click()
            return True

        wait_until(click_ack, 10, "ack clicked")
        wait_until(lambda: stack.js("return window.gridgateHmi.alarms.unacked()") == unacked - 1, 10, "one alarm acknowledged")
        assert "acked" in wait_until(row, 10, "row")["cls"]
        # every F6 alarm acknowledged (auto-reclose onto the fault may have operated the relay again): the flag drops
        stack.driver.find_element(By.ID, "ack-all").click()
        wait_until(lambda: stack.js(flag) == ["", "false"], 10, "TRIP flag on F6 reset by the acknowledgement")
        stack.shot("10-protection-trip")
        stack.js("const s = document.getElementById('bay-filter'); s.value = ''; s.dispatchEvent(new Event('change'));"
                 "const c = document.getElementById('only-alarms'); c.checked = false; c.dispatchEvent(new Event('change'))")
    finally:
        stack.faults.clear(fid)
        reclose = stack.faults.inject({"point": "ied-f6/CB"}, {"kind": "set_state", "value": 2})["id"]  # back in service
        stack.faults.clear(reclose)


def test_laptop_and_wall_display_layouts(stack):
    """Responsive: no horizontal scrolling; alarms beside the diagram when wide, below it when narrow."""
    geometry = ("const d = document.getElementById('diagram-pane').getBoundingClientRect(), a = document.getElementById('alarm-pane')"
                ".getBoundingClientRect(), s = document.querySelector('svg.sld').getBoundingClientRect();"
                "return {page: document.documentElement.scrollWidth, inner: window.innerWidth, d: [d.left, d.top, d.width], "
                "a: [a.left, a.top], svg: s.width}")
    try:
        for (w, h), beside in (((900, 1000), False), ((1366, 768), True), ((2560, 1440), True)):
            stack.driver.set_window_size(w, h)
            g = wait_until(lambda: (x := stack.js(geometry)) and x["inner"] <= w and x, 10, f"{w}x{h} layout")
            assert g["page"] <= g["inner"], f"{w}x{h}: page wider than the window: {g}"
            assert (g["a"][0] > g["d"][0] + g["d"][2] - 1) == beside and (g["a"][1] > g["d"][1]) != beside, g
            assert g["svg"] > 0.8 * g["d"][2], f"{w}x{h}: the diagram uses the pane's width: {g}"
            stack.shot(f"11-layout-{w}x{h}")
    finally:
        stack.driver.set_window_size(1600, 1000)


def test_gateway_offline_makes_control_unavailable(stack):
    stack.loop.run(stack.gw.stop())
    stack.gw = None
    wait_until(lambda: stack.js("return document.getElementById('gw-state').dataset.state") == "offline", 30, "gateway offline")
    assert stack.js("return document.getElementById('control-state').dataset.state") == "unavailable"
    assert any("gateway offline (shutdown)" in t for t in stack.alarms_text())
    stack.shot("08-offline")
    assert console_errors(stack.driver) == []


def test_profile_without_inbound_commands_shows_control_unavailable(stack):
    """A one-way profile: the gateway subscribes to nothing and says so in its status (`commands: false`)."""
    from selenium.webdriver.common.by import By

    async def restart_one_way():
        stack.gw = Gateway(stack.cfg, GatewayOptions(broker=stack.mosq.url, protocol="5", status_interval=2.0, inbound=False))
        await stack.gw.start()

    stack.loop.run(restart_one_way())
    wait_until(lambda: stack.js("return document.getElementById('gw-state').dataset.state") == "online", 30, "gateway online again")
    state = stack.driver.find_element(By.ID, "control-state")
    assert state.get_attribute("data-state") == "unavailable"
    assert "accepts no commands" in state.text, state.text
    stack.driver.find_element(By.CSS_SELECTOR, "g.breaker[data-bay='F5'][data-eq='CB']").click()
    assert not stack.driver.find_element(By.ID, "sbo").is_displayed()
    assert "control unavailable" in stack.driver.find_element(By.ID, "banner").text
    stack.shot("09-one-way")
    assert console_errors(stack.driver) == []


def test_value_hover_shows_quality_source_time_and_age(stack):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    ia = stack.mrid("ied-f4", "Ia")
    el = stack.driver.find_element(By.CSS_SELECTOR, f"text.val[data-mrid='{ia}']")
    ActionChains(stack.driver).move_to_element(el).perform()
    tip = wait_until(lambda: (t := stack.driver.find_element(By.ID, "tooltip")).is_displayed() and t.text, 10, "tooltip")
    assert "KGM/F4/FDR Ia" in tip and "LineCurrent A" in tip, tip
    assert "quality " in tip and "source time 20" in tip and ", age " in tip, tip
    ActionChains(stack.driver).move_by_offset(0, 300).perform()


def test_broker_loss_and_return_in_the_status_bar(stack):
    state = lambda: stack.js("return document.getElementById('broker-state').dataset.state")  # noqa: E731
    assert state() == "connected"
    stack.mosq.stop()
    try:
        wait_until(lambda: state() in ("reconnecting", "offline", "disconnected"), 30, "broker loss shown")
        assert any("broker connection lost" in t for t in stack.alarms_text())
        stack.shot("12-broker-lost")
    finally:
        stack.mosq.start()
    wait_until(lambda: state() == "connected", 60, "broker connection back")
    assert console_errors(stack.driver) == [] or all("WebSocket" in e["message"] for e in console_errors(stack.driver))
