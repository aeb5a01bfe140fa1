"""fleetlens: analytics."""
