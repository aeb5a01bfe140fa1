"""fleetlens: fleetlens."""
