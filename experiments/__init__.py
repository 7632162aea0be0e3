"""Scripts that compose configs into runs and write a report: python -m experiments.<name>."""
