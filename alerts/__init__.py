"""fleetlens: alerts."""
