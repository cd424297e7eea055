"""The whole server: the care MQTT consumer started by the app, guardian and CCTV-center SSE channels."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import orjson
from care_support import BROKER_HOST, BROKER_PORT, BROKER_URL, PATIENCE, family, need_broker
from conftest import LiveServer
from paho.mqtt import publish

from haechi.api.app import create_app
from haechi.care import repository
from haechi.core.clock import utcnow
from haechi.core.settings import Settings
from haechi.store.access import create_token


class Stream:
    """An SSE reader with a bearer token, collecting ``care.alert`` events in a thread."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.seen: list[dict] = []
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.stream("GET", self.url, headers=headers, timeout=PATIENCE) as response:
            for line in response.iter_lines():
                self.connected.set()
                if line.startswith("data: "):
                    self.seen.append(json.loads(line[6:]))
                    return

    def __enter__(self) -> Stream:  # noqa: PYI034
        self.thread.start()
        assert self.connected.wait(10), "the care alert stream did not connect"
        return self

    def __exit__(self, *exc) -> None:
        pass  # the reader ends with its first event or its timeout

    def result(self) -> dict:
        self.thread.join(PATIENCE)
        assert self.seen, "no care alert arrived on the stream"
        return self.seen[0]


def test_an_sos_over_mqtt_reaches_the_guardian_and_cctv_streams_and_both_reads_are_logged(sqlite_engine):
    need_broker()
    engine = sqlite_engine
    prefix = f"test-care/{uuid.uuid4().hex[:12]}"
    settings = Settings(care_mqtt_url=BROKER_URL, care_topic_prefix=prefix, care_tick_s=3600)
    f = family(engine, kind="walker", alias="Jieun", language="ja", needs=("sign_language",), zones=False)
    with engine.begin() as conn:
        _, cctv = create_token(conn, "cctv-op", "operator", center="cctv")
        _, fire = create_token(conn, "119-op", "operator", center="119")
    app = create_app(engine, settings)
    with LiveServer(app) as server:
        for _ in range(int(PATIENCE * 10)):
            if app.state.care_mqtt and app.state.care_mqtt._subscribed.is_set():
                break
            time.sleep(0.1)
        url = f"{server.url}/api/v1/care/alerts/stream"
        with Stream(url, f.token) as guardian, Stream(url, cctv) as center, Stream(url, fire) as other:
            payload = orjson.dumps({"at": utcnow().isoformat(), "lon": 127.021, "lat": 37.511})
            publish.single(f"{prefix}/{f.devices['tracker']}/sos", payload, qos=1, hostname=BROKER_HOST,
                           port=BROKER_PORT)
            to_guardian, to_center = guardian.result(), center.result()
            other.thread.join(1)
    assert to_guardian["kind"] == "sos" and to_guardian["position"] == {"lon": 127.021, "lat": 37.511}
    assert to_guardian["message"]["language"] == "ja" and "SOS" in to_guardian["message"]["title"]
    assert to_guardian["message"]["sign_language_url"].startswith("https://")
    assert to_center["position"] == {"lon": 127.021, "lat": 37.511} and to_center["message"]["language"] == "ko"
    assert other.seen == []  # a 119 operator is not the CCTV safety center
    with engine.begin() as conn:
        log = repository.access_log(conn, f.ward["id"])
    assert sorted((x["actor"], x["action"]) for x in log if x["action"] == "alert position streamed") == [
        ("cctv-op", "alert position streamed"), (f.token_name, "alert position streamed")]
