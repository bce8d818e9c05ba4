"""The composition layer: daemon, roles, CLI, HTTP, metrics, checkpoints, systemd, demo."""
