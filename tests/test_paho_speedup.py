"""The faster reading of incoming MQTT 5 PUBLISH properties reads what paho's own does.

``haechi.bus.paho_speedup`` shares paho's property tables and skips empty property lists; a
message with properties (a device's content type, user properties, an expiry) must come out the
same, and one without must have none. The MQTT ingest tests run it against Mosquitto end to end.
"""

from __future__ import annotations

import struct

import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from haechi.bus import paho_speedup

QOS1 = 0x32  # PUBLISH, QoS 1


def publish_body(topic: str, mid: int, properties: Properties | None, payload: bytes) -> bytes:
    """A PUBLISH packet after its fixed header, as a broker sends it to an MQTT 5 client."""
    encoded = topic.encode()
    props = properties.pack() if properties is not None else b"\x00"
    return struct.pack("!H", len(encoded)) + encoded + struct.pack("!H", mid) + props + payload


def with_properties() -> Properties:
    found = Properties(PacketTypes.PUBLISH)
    found.ContentType = "application/json"
    found.MessageExpiryInterval = 3600
    found.UserProperty = [("site", "hangang"), ("firmware", "1.4")]
    return found


@pytest.fixture
def installed(monkeypatch):
    monkeypatch.setattr(_packet, "Properties", Properties)
    assert paho_speedup.install()
    return _packet


@pytest.mark.parametrize("properties", [None, with_properties()], ids=["none", "content-type-expiry-user"])
def test_a_publish_reads_the_same_as_with_pahos_own_properties(installed, properties):
    body = publish_body("haechi/v1/12/observations", 7, properties, b'{"result": 1.5}')
    fast = installed.decode_publish(QOS1, body, MQTTProtocolVersion.MQTTv5)
    installed.Properties = Properties
    plain = installed.decode_publish(QOS1, body, MQTTProtocolVersion.MQTTv5)
    assert (fast.topic, fast.mid, fast.qos, fast.payload) == (plain.topic, plain.mid, plain.qos, plain.payload)
    assert fast.properties.json() == plain.properties.json()
    assert fast.payload == b'{"result": 1.5}'
    if properties is not None:
        assert fast.properties.ContentType == "application/json"
        assert fast.properties.UserProperty == [("site", "hangang"), ("firmware", "1.4")]


def test_messages_do_not_share_what_they_carry(installed):
    first = installed.decode_publish(QOS1, publish_body("a/b", 1, with_properties(), b"x"), MQTTProtocolVersion.MQTTv5)
    second = installed.decode_publish(QOS1, publish_body("a/b", 2, None, b"y"), MQTTProtocolVersion.MQTTv5)
    assert first.properties.ContentType == "application/json"
    assert not hasattr(second.properties, "ContentType")


def test_another_paho_release_keeps_pahos_own(monkeypatch):
    monkeypatch.setattr(_packet, "Properties", Properties)
    monkeypatch.setattr(paho_speedup, "version", lambda _name: "9.9.9")
    assert not paho_speedup.install()
    assert _packet.Properties is Properties
