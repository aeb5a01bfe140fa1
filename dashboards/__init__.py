"""fleetlens: dashboards."""
