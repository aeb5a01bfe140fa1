"""fleetlens: collectors."""
