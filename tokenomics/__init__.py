"""fleetlens: tokenomics."""
