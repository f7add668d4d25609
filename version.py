"""The service's version: the one place it is written (`--version`, `/healthz`, backup manifests)."""
VERSION = "1.1.0"
