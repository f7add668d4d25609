"""The service's version: the one place it is written (`--version`, `/healthz`, backup manifests)."""
VERSION = "1.2.0"
