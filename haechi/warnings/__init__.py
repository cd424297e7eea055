"""Early warnings: official criteria as data, and the engine that turns observations into warnings."""
