"""Settings, errors, events and the clock. Imports nothing else of Haechi's."""
