"""Alerts: CAP 1.2 messages in many languages, composed from warnings, and their channels.

- :mod:`.cap` — the CAP 1.2 model, XML encoding/decoding, validation against the official OASIS
  schema (obtained by :mod:`.schema`), and the same content as JSON.
- :mod:`.messages` — hand-written message templates and the action-guidance library (data files).
- :mod:`.compose` — a warning's lifecycle change plus its area's facts → a CAP alert.
- :mod:`.feeds`, :mod:`.webhooks`, :mod:`.channels` — Atom feeds, signed webhooks, delivery.
- :mod:`.profile` — the Google Public Alerts CAP profile as a checker (rules in ``google_profile.toml``).
- :mod:`.signing`, :mod:`.issuer` — every alert's XML signature, and this installation's public
  pages and signing key; :mod:`.page` — an alert's public page (its CAP ``<web>``).
"""
