"""Pure domain types shared by every capability. Imports nothing outside the standard library."""
