"""Care for the vulnerable (services 16–20): location check, elderly living alone, safe return
home, child traffic safety and tailored alerts — private by design (PIPA as the bar).

Pure logic: ``rules`` (data files), ``geofence`` (vectorised zone/hazard/dwell checks),
``reports`` (validating device messages), ``trips``, ``welfare``, ``messages``.
I/O: ``store`` (tables), ``service`` (the flow), ``mqtt`` (the device consumer), ``commands`` (CLI).
"""
