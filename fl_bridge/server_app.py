"""The Flower ServerApp (Message API). In simulation it is built around a `RunConfig`; in a
deployment (`flwr run`) the module-level `app` reads the `RunConfig` from the run config: one
typed key per field (`rounds`, `lda-alpha`, `shots = "1,5"`; see `fl_bridge.flat`), declared in
the app's `pyproject.toml` by `python -m fl_bridge run --superlink`, so that
`flwr run --run-config 'rounds=3'` overrides one setting."""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fl_bridge.config import RunConfig
from fl_bridge.errors import FLError
from fl_bridge.flat import from_run_config
from fl_bridge.server import run_federation


def run_config(context: Context) -> RunConfig:
    """The run's `RunConfig` from Flower's run config (FLError with one line for a bad key)."""
    try:
        return from_run_config(RunConfig, context.run_config)
    except (TypeError, ValueError) as e:
        raise FLError(f"run config: {e}") from None


def make_server_app(cfg: RunConfig | None = None) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_federation(grid, cfg or run_config(context))

    return app


app = make_server_app()
