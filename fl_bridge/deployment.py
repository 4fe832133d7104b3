"""A real deployment: SuperLink and SuperNodes as separate processes, the run submitted with
`flwr run`. `python -m fl_bridge superlink|supernode` start the documented Flower commands;
`python -m fl_bridge run --superlink HOST:PORT` writes a Flower app folder (pyproject.toml whose
components are `fl_bridge.server_app:app` and `fl_bridge.client_app:app`, run config = this
`RunConfig`) and a Flower home with the connection, then runs `flwr run` and waits.
Every machine needs this repository installed in its Python environment (the app code is not
shipped in the FAB) and, for real datasets, the data under the same `--data-root`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from fl_bridge.config import RunConfig
from fl_bridge.errors import FLError
from fl_bridge.rundir import RunDir, atomic_write_text
from fl_bridge.server_app import CONFIG_KEY

CONNECTION = "fl-bridge"


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid TOML basic string


def flower_env() -> dict[str, str]:
    """Environment for Flower's commands: this interpreter's bin folder first, no update check."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    return env


def flower_command(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def superlink_command(host: str, port: int, database: str | None = None) -> list[str]:
    cmd = [flower_command("flower-superlink"), "--insecure", "--host", host, "--port", str(port),
           "--disable-runtime-dependency-installation"]
    return cmd + (["--database", database] if database else [])


def supernode_command(superlink: str, port: int, host: str = "127.0.0.1") -> list[str]:
    return [flower_command("flower-supernode"), "--insecure", "--superlink", superlink,
            "--host", host, "--port", str(port)]


def write_flower_app(app_dir: Path, cfg: RunConfig) -> Path:
    """The app folder `flwr run` builds its FAB from; the run config carries `cfg` as JSON."""
    text = "\n".join([
        "[build-system]", 'requires = ["hatchling"]', 'build-backend = "hatchling.build"', "",
        "[project]", 'name = "fl-bridge"', 'version = "1.0.0"',
        'description = "Federated backbone training of fl_bridge (code installed on every node)"',
        'license = "Apache-2.0"', "dependencies = []", "",
        "[tool.flwr.app]", 'publisher = "fsl-fpga"', "",
        "[tool.flwr.app.components]", 'serverapp = "fl_bridge.server_app:app"',
        'clientapp = "fl_bridge.client_app:app"', "",
        "[tool.flwr.app.config]", f"{CONFIG_KEY} = {_toml_str(cfg.to_json())}", "",
    ])
    atomic_write_text(app_dir / "pyproject.toml", text)
    return app_dir


def write_flower_home(home: Path, superlink: str) -> Path:
    text = "\n".join(["[superlink]", f"default = {_toml_str(CONNECTION)}", "",
                      f"[superlink.{CONNECTION}]", f"address = {_toml_str(superlink)}", "insecure = true", ""])
    atomic_write_text(home / "config.toml", text)
    return home


def run_on_superlink(cfg: RunConfig, superlink: str, timeout_s: float | None = None) -> RunDir:
    """Submit `cfg` to a running SuperLink with `flwr run --stream` and wait for the run."""
    cfg = replace(cfg, out=str(Path(cfg.out).resolve())).check()
    flower = Path(cfg.out) / "flower"
    app = write_flower_app(flower / "app", cfg)
    env = flower_env()
    env["FLWR_HOME"] = str(write_flower_home(flower / "home", superlink))
    try:
        proc = subprocess.run([flower_command("flwr"), "run", str(app), CONNECTION, "--stream"], env=env,
                              timeout=timeout_s, stdout=sys.stderr, stderr=sys.stderr)
    except subprocess.TimeoutExpired:
        raise FLError(f"the run on SuperLink {superlink} did not finish within {timeout_s:.0f} s") from None
    run = RunDir(cfg.out)
    if proc.returncode != 0 or not run.checkpoint_path.is_file():
        raise FLError(f"the run on SuperLink {superlink} failed (flwr run exit {proc.returncode}); see the log above")
    return run
