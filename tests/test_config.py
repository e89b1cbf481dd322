"""Settings precedence: flag > environment > TOML file > default, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from attestables.daemon.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "daemon.toml"
    path.write_text(text)
    return path


def test_precedence_flag_env_file_default(tmp_path):
    config = write(tmp_path, 'listen = "127.0.0.1:1111"\nrun_wall_s = 11\nrun_cpu_s = 12\nlog_level = "debug"\n')
    env = {"ATTESTABLES_RUN_WALL_S": "22", "ATTESTABLES_LISTEN": "127.0.0.1:2222", "HOME": str(tmp_path)}
    settings = load_settings({"listen": "127.0.0.1:3333", "config": str(config)}, environ=env)
    assert settings.listen == "127.0.0.1:3333"  # flag beats env and file
    assert settings.run_wall_s == 22  # env beats file
    assert settings.run_cpu_s == 12  # file beats default
    assert settings.run_memory_mb == 512  # default
    assert settings.log_level == "debug"


def test_state_dir_defaults(tmp_path):
    assert load_settings({}, environ={"STATE_DIRECTORY": "/var/lib/attestables:/x"}).state_dir == \
        Path("/var/lib/attestables")
    assert load_settings({}, environ={"XDG_STATE_HOME": str(tmp_path)}).state_dir == tmp_path / "attestables"
    assert load_settings({"state_dir": str(tmp_path / "s")}, environ={}).state_dir == tmp_path / "s"


def test_config_file_from_environment(tmp_path):
    config = write(tmp_path, "allow_unconfined = true\n")
    settings = load_settings({}, environ={"ATTESTABLES_CONFIG": str(config), "HOME": str(tmp_path)})
    assert settings.allow_unconfined is True


@pytest.mark.parametrize("text,needle", [
    ("run_wal_s = 3\n", "unknown setting 'run_wal_s'"),
    ('run_wall_s = "soon"\n', "run_wall_s"),
    ("run_wall_s = 0\n", "must be positive"),
    ("allow_unconfined = 1\n", "boolean"),
    ("listen = 7480\n", "expected a string"),
    ('listen = "nohost"\n', "HOST:PORT"),
    ('log_level = "loud"\n', "log_level"),
    ("run_wall_s = 10\nmax_run_wall_s = 5\n", "exceeds max_run_wall_s"),
    ("not toml at all [\n", "config file"),
])
def test_bad_file_values_are_refused_with_the_setting_named(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        load_settings({"config": str(write(tmp_path, text))}, environ={"HOME": str(tmp_path)})


def test_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="ATTESTABLES_RUN_CPU_S"):
        load_settings({}, environ={"ATTESTABLES_RUN_CPU_S": "lots", "HOME": str(tmp_path)})


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="No such file"):
        load_settings({"config": str(tmp_path / "absent.toml")}, environ={})


def test_event_loop_setting_chooses_the_loop(tmp_path, monkeypatch):
    import asyncio
    import builtins

    from attestables.daemon.main import loop_factory

    with pytest.raises(ConfigError, match="event_loop: expected auto, uvloop, asyncio"):
        load_settings({"state_dir": tmp_path, "event_loop": "trio"})
    assert loop_factory("asyncio") == (None, "asyncio")
    factory, name = loop_factory("auto")
    uvloop = pytest.importorskip("uvloop")
    assert factory is uvloop.new_event_loop and name == f"uvloop {uvloop.__version__}"
    loop = factory()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop) and type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()

    real_import = builtins.__import__

    def no_uvloop(name, *args, **kwargs):
        if name == "uvloop":
            raise ImportError("no uvloop here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert loop_factory("auto") == (None, "asyncio")  # where uvloop is not installed
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        loop_factory("uvloop")
