"""Where things live: flags beat environment, environment beats config file, which beats defaults.

``HARNESS_HOME`` holds the token cache and derived weights; ``HARNESS_DATA_ROOT``
holds brain data (e.g. ``../shared/data``); the database defaults to
``leaderboards/harness.duckdb`` under the current project, else under HARNESS_HOME.
A TOML config file (``$HARNESS_CONFIG`` or ``~/.config/harness/config.toml``) may set
``home``, ``data_root``, ``db`` and ``device``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import tomllib

from harness.errors import HarnessError


#: config-file keys kept in ``Settings.extra`` for the executor (resolved in harness/executors/options.py)
EXECUTOR_KEYS = ("executor", "ray_address", "cpus_per_job", "gpus_per_job", "split_heads")


def _config_file() -> Path:
    env = os.environ.get("HARNESS_CONFIG")
    if env:
        return Path(env)
    return Path.home() / ".config" / "harness" / "config.toml"


def _read_config(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{path}: invalid TOML: {exc}") from exc
    allowed = {"home", "data_root", "db", "device", "registry", *EXECUTOR_KEYS}
    unknown = set(data) - allowed
    if unknown:
        raise HarnessError(f"{path}: unknown setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return {k: str(v) for k, v in data.items()}


@dataclass(frozen=True)
class Settings:
    home: Path
    data_root: Path | None
    db: Path
    device: str = "auto"
    registry: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def with_overrides(self, **kw: object) -> Settings:
        clean = {k: v for k, v in kw.items() if v is not None}
        for key in ("home", "data_root", "db", "registry"):
            if key in clean:
                clean[key] = Path(str(clean[key])).expanduser()
        return replace(self, **clean)  # type: ignore[arg-type]


def default_db_path(home: Path) -> Path:
    """The project's ``leaderboards/`` folder when run from a checkout, so SQL views sit beside the data."""
    local = Path.cwd() / "leaderboards"
    if (local / "leaderboard.sql").is_file() or ((Path.cwd() / "registry.yaml").is_file() and local.is_dir()):
        return local / "harness.duckdb"
    return home / "harness.duckdb"


def load_settings() -> Settings:
    cfg = _read_config(_config_file())
    home = Path(os.environ.get("HARNESS_HOME") or cfg.get("home") or Path.home() / ".cache" / "harness").expanduser()
    data_env = os.environ.get("HARNESS_DATA_ROOT") or cfg.get("data_root")
    data_root = Path(data_env).expanduser() if data_env else None
    db_env = os.environ.get("HARNESS_DB") or cfg.get("db")
    db = Path(db_env).expanduser() if db_env else default_db_path(home)
    reg = os.environ.get("HARNESS_REGISTRY") or cfg.get("registry")
    return Settings(
        home=home,
        data_root=data_root,
        db=db,
        device=os.environ.get("HARNESS_DEVICE") or cfg.get("device", "auto"),
        registry=Path(reg).expanduser() if reg else None,
        extra={k: cfg[k] for k in EXECUTOR_KEYS if k in cfg},
    )
