"""Settings: defaults, a file over them, environment overrides, and validation that names the bad value."""
import pytest
import yaml

import config


def write(tmp_path, data):
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_defaults_are_the_embedded_file():
    settings = config.load(environ={})
    assert settings["server"]["port"] == 8000 and settings["server"]["host"] == "127.0.0.1"
    assert settings["database"]["url"] == "sqlite:///data/zhugeleida.db"
    assert settings["auth"]["max_skew_seconds"] == 300
    assert settings["stats"]["timezone"] == "Asia/Shanghai"


def test_every_setting_has_a_comment():
    for line in config.DEFAULTS_PATH.read_text().splitlines():
        if line.startswith("  ") and ":" in line:
            assert "#" in line, f"setting without a comment: {line.strip()}"


def test_file_overrides_only_the_keys_it_names(tmp_path):
    settings = config.load(write(tmp_path, {"server": {"port": 9100}}), environ={})
    assert settings["server"]["port"] == 9100 and settings["server"]["host"] == "127.0.0.1"


def test_environment_overrides_file_and_flags_override_environment(tmp_path):
    path = write(tmp_path, {"server": {"port": 9100}})
    environ = {"ZGLD_SERVER_PORT": "9200", "ZGLD_DATABASE_URL": "postgresql://u@h/db", "ZGLD_STORAGE_ROOT": "/x"}
    settings = config.load(path, environ=environ)
    assert settings["server"]["port"] == 9200
    assert settings["database"]["url"] == "postgresql://u@h/db" and settings["storage"]["root"] == "/x"
    assert config.load(path, environ=environ, overrides={("server", "port"): 9300})["server"]["port"] == 9300


@pytest.mark.parametrize("data, named", [
    ({"server": {"port": 70000}}, "server.port"),
    ({"server": {"port": "eighty"}}, "server.port"),
    ({"server": {"portt": 1}}, "server.portt"),
    ({"nosuch": {"a": 1}}, "nosuch"),
    ({"database": {"url": "mysql://x"}}, "database.url"),
    ({"stats": {"timezone": "Mars/Olympus"}}, "stats.timezone"),
    ({"auth": {"scrypt_n": 1000}}, "auth.scrypt_n"),
    ({"upload": {"max_chunk_bytes": 0}}, "upload.max_chunk_bytes"),
    ({"logging": {"level": "LOUD"}}, "logging.level"),
])
def test_bad_values_stop_with_a_message_naming_them(tmp_path, data, named):
    with pytest.raises(config.ConfigError, match=named.replace(".", r"\.")):
        config.load(write(tmp_path, data), environ={})


@pytest.mark.parametrize("environ, named", [
    ({"ZGLD_SERVER_PORT": "abc"}, "ZGLD_SERVER_PORT"),
    ({"ZGLD_SERVER_NOPE": "1"}, "ZGLD_SERVER_NOPE"),
    ({"ZGLD_SERVER_PORT": "-5"}, "server.port"),
])
def test_bad_environment_values_are_named(environ, named):
    with pytest.raises(config.ConfigError, match=named.replace(".", r"\.")):
        config.load(environ=environ)


def test_unreadable_or_malformed_file(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.yaml", environ={})
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(write(tmp_path, "server: [unclosed"), environ={})
