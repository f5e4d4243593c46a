"""``fleetgauge demo``: demo history (``seed``) and the live demo that runs it (``run``)."""
