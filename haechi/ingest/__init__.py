"""Getting observations in: adapters (MQTT, HTTP, SensorThings, files), quality control, live state."""
