"""Experiments made of whole runs: `recipe compare` (`compare`), `recipe tune` (`tune`), the demo (`demo`)."""
