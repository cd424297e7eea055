"""Simulation framework (the virtual city): what-if runs stored as scenarios, never live state."""
