"""A faster reading of incoming MQTT 5 PUBLISH properties for paho-mqtt (pinned in pyproject.toml).

For every incoming MQTT 5 PUBLISH, paho builds a ``Properties`` object, and each one rebuilds two
tables of all 27 property names and identifiers, then clears every name one by one before reading
the (usually empty) property list. Profiled at 5,000 messages a second, that was a fifth of the
server's whole Python time and a third of paho's (docs/benchmarks.md, issue 17). The tables never
change, so :class:`PublishProperties` shares one copy, and an empty property list is read as
empty. Everything else, and any PUBLISH that does carry properties, takes paho's own code.

:func:`install` puts it where paho decodes PUBLISH packets, only on the paho release it was
checked against: on another release it leaves paho as it is (slower, equally correct) and logs it.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

from paho.mqtt import _packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

CHECKED_RELEASE = "2.2.0"  # the paho-mqtt whose Properties and _packet.decode_publish this matches
NO_PROPERTIES = b"\x00"  # a property length of zero (one Variable Byte Integer byte)


class PublishProperties(Properties):
    """paho's ``Properties`` with its name tables shared and an empty list read without work."""

    _tables = Properties(PacketTypes.PUBLISH)

    def __init__(self, packetType: int) -> None:
        if packetType != PacketTypes.PUBLISH:
            super().__init__(packetType)
            return
        object.__setattr__(self, "packetType", packetType)
        for name in ("types", "names", "properties"):  # read-only lookups: one copy serves all
            object.__setattr__(self, name, getattr(self._tables, name))

    def unpack(self, buffer: bytes) -> tuple[Properties, int]:
        if self.packetType == PacketTypes.PUBLISH and buffer[:1] == NO_PROPERTIES:
            return self, 1  # nothing set on a new object: nothing to clear, nothing to read
        return super().unpack(buffer)


def install() -> bool:
    """Decode incoming PUBLISH properties with :class:`PublishProperties`; whether it was installed."""
    if _packet.Properties is PublishProperties:
        return True
    found = version("paho-mqtt")
    if found != CHECKED_RELEASE or _packet.Properties is not Properties:
        log.info("paho-mqtt %s: its own PUBLISH properties kept (the faster reading matches %s)",
                 found, CHECKED_RELEASE)
        return False
    _packet.Properties = PublishProperties
    return True
