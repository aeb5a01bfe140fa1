"""fleetlens: simulator."""
