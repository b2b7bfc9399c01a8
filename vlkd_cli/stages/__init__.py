"""One thin entry per command: a config dataclass and `run(cfg)` (docs/architecture.md)."""
