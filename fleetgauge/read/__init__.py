"""Reading back what fleetgauge stored: rows (``query``), CSV (``export``), executions."""
