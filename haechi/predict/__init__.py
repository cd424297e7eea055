"""Prediction models (issue 5): urban flooding, river stage, heat-health risk, crowd safety — and the
earthquake model (``quake.py``). Numeric logic per model module, database I/O in ``live.py`` and
``publish.py``; method, inputs and limits in docs/predictions.md."""
