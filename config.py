"""Settings: the embedded config.yaml, an optional file over it, then ZGLD_<SECTION>_<KEY> variables.

Every setting must exist in the embedded config.yaml, which gives its default and its type. Anything
else, or a value of the wrong type or out of range, stops the service with a ConfigError naming it.
"""
import ipaddress
import os
import re
import sys
import zoneinfo
from pathlib import Path

import yaml

ENV_PREFIX = "ZGLD_"


def resource_path(name):
    """A file shipped with the service (inside a one-file bundle, next to the unpacked code)."""
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent))
    return base / name


DEFAULTS_PATH = resource_path("config.yaml")


class ConfigError(Exception):
    pass


def _positive(value):
    return value > 0


def _non_negative(value):
    return value >= 0


def _valid_timezone(value):
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _origins(value):
    """'*' or origins separated by spaces: scheme://host[:port], nothing after it."""
    origins = value.split()
    return origins == ["*"] or bool(origins) and all(
        re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin) for origin in origins)


def _networks(value):
    """Networks separated by spaces (10.0.0.0/8, ::1/128, a single address), or none at all."""
    try:
        for network in value.split():
            ipaddress.ip_network(network)
    except ValueError:
        return False
    return True


def _database_url(value):
    return value.startswith(("sqlite://", "postgresql://", "postgres://"))


# Checks beyond the type: (section, key) -> (predicate, what a valid value is).
RULES = {
    ("server", "port"): (lambda v: 0 <= v <= 65535, "a port number 0-65535"),
    ("server", "processes"): (_positive, "at least 1"),
    ("server", "max_body_bytes"): (_positive, "a positive number of bytes"),
    ("server", "worker_threads"): (_positive, "at least 1"),
    ("server", "shutdown_grace_seconds"): (_non_negative, "zero or more seconds"),
    ("server", "cors_origins"): (_origins, '"*" or origins such as https://admin.example.com, separated by spaces'),
    ("server", "idle_timeout_seconds"): (_positive, "a positive number of seconds"),
    ("server", "body_timeout_seconds"): (_positive, "a positive number of seconds"),
    ("database", "url"): (_database_url, "a sqlite:/// or postgresql:// URL"),
    ("database", "busy_timeout_ms"): (_non_negative, "zero or more milliseconds"),
    ("auth", "max_skew_seconds"): (_positive, "a positive number of seconds"),
    ("auth", "login_max_failures"): (_positive, "at least 1"),
    ("auth", "login_max_failures_per_address"): (_positive, "at least 1"),
    ("auth", "login_window_seconds"): (_positive, "a positive number of seconds"),
    ("auth", "scrypt_n"): (lambda v: v >= 2 and v & (v - 1) == 0, "a power of two"),
    ("storage", "backend"): (lambda v: v in ("local",), "one of: local"),
    ("storage", "min_free_bytes"): (_non_negative, "zero or more bytes"),
    ("upload", "max_chunk_bytes"): (_positive, "a positive number of bytes"),
    ("upload", "body_timeout_seconds"): (_positive, "a positive number of seconds"),
    ("upload", "max_chunks"): (_positive, "at least 1"),
    ("upload", "max_upload_bytes"): (_positive, "a positive number of bytes"),
    ("upload", "max_open_uploads"): (_positive, "at least 1"),
    ("upload", "expire_seconds"): (_positive, "a positive number of seconds"),
    ("upload", "max_pixels"): (_positive, "a positive number of pixels"),
    ("upload", "thumbnail_px"): (_positive, "a positive number of pixels"),
    ("upload", "jpeg_quality"): (lambda v: 1 <= v <= 95, "a quality from 1 to 95"),
    ("upload", "orphan_grace_seconds"): (_non_negative, "zero or more seconds"),
    ("upload", "image_threads"): (_positive, "at least 1"),
    ("accounts", "default_card_quota"): (_non_negative, "zero or more cards"),
    ("upload", "company_max_pictures"): (_positive, "at least 1"),
    ("upload", "company_max_bytes"): (_positive, "a positive number of bytes"),
    ("upload", "unattached_picture_days"): (_positive, "a positive number of days"),
    ("stats", "timezone"): (_valid_timezone, "an IANA time zone such as Asia/Shanghai"),
    ("stats", "recompute_days"): (_non_negative, "zero or more days"),
    ("stats", "rollup_delay_seconds"): (_non_negative, "zero or more seconds"),
    ("stats", "rollup_check_seconds"): (_positive, "a positive number of seconds"),
    ("logging", "level"): (lambda v: v in ("DEBUG", "INFO", "WARNING", "ERROR"), "DEBUG, INFO, WARNING or ERROR"),
    ("logging", "format"): (lambda v: v in ("text", "json"), "text or json"),
    ("metrics", "allowed_networks"): (_networks, "networks such as 127.0.0.0/8 10.0.0.0/8, separated by spaces"),
}


def _read_yaml(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold sections of settings")
    return data


def _coerce(name, text, default):
    """Turn an environment variable's text into the type of the setting's default."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={text!r}: expected true or false")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r}: expected a whole number") from None
    return text


def _check_type(name, value, default):
    expected = type(default)
    if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, expected):
        raise ConfigError(f"setting {name}: expected {expected.__name__}, got {value!r}")


def _merge_file(settings, data, source):
    for section, values in data.items():
        if section not in settings:
            raise ConfigError(f"{source}: unknown section {section!r}")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must hold settings")
        for key, value in values.items():
            if key not in settings[section]:
                raise ConfigError(f"{source}: unknown setting {section}.{key}")
            _check_type(f"{section}.{key}", value, settings[section][key])
            settings[section][key] = value


def _merge_environment(settings, environ):
    known = {f"{ENV_PREFIX}{s}_{k}".upper(): (s, k) for s in settings for k in settings[s]}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        if name not in known:
            raise ConfigError(f"unknown setting in environment: {name}")
        section, key = known[name]
        settings[section][key] = _coerce(name, text, settings[section][key])


def _validate(settings):
    for (section, key), (ok, meaning) in RULES.items():
        value = settings[section][key]
        if not ok(value):
            raise ConfigError(f"setting {section}.{key}={value!r}: must be {meaning}")


def place_data(settings, data_dir):
    """--data-dir DIR: the SQLite database (DIR/zhugeleida.db), the upload staging (DIR/uploads) and the
    pictures (DIR/statics, served at /statics/) all go under DIR. A PostgreSQL database.url is kept."""
    base = Path(data_dir)
    if settings["database"]["url"].startswith("sqlite:///"):
        settings["database"]["url"] = f"sqlite:///{base / 'zhugeleida.db'}"
    settings["storage"]["staging"] = str(base / "uploads")
    settings["storage"]["root"] = str(base / "statics")
    return settings


def load(path=None, environ=None, overrides=None):
    """Build the settings: embedded defaults, then the file at `path`, the environment, then `overrides`.

    `overrides` maps (section, key) to a value (command-line flags such as --port)."""
    settings = _read_yaml(DEFAULTS_PATH)
    if path is not None:
        _merge_file(settings, _read_yaml(path), path)
    _merge_environment(settings, os.environ if environ is None else environ)
    for (section, key), value in (overrides or {}).items():
        _check_type(f"{section}.{key}", value, settings[section][key])
        settings[section][key] = value
    _validate(settings)
    return settings
