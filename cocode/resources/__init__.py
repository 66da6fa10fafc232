"""ADR-005's resources: process-tree sampling, CPU shares, the monitor's policy,
metrics and their exposition."""
