"""Roads: the road graph, fast routing, hazard-aware closures, evacuation and golden-time coverage."""
