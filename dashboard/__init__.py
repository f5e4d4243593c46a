"""fleetgauge dashboard: the Dash site that reads the stores through ``agent.stores``."""
