"""Agent output: redaction, shipping, the collector's per-run storage and files,
ring buffer, fsync thread, tail."""
