"""The Flower ServerApp (Message API). In simulation it is built around a `RunConfig`; in a
deployment (`flwr run`) the module-level `app` reads the config from the run config key
`fl-config` (the JSON of `RunConfig`), which `python -m fl_bridge run --superlink` sets."""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fl_bridge.config import RunConfig
from fl_bridge.server import run_federation

CONFIG_KEY = "fl-config"


def make_server_app(cfg: RunConfig | None = None) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_federation(grid, cfg or RunConfig.from_json(str(context.run_config[CONFIG_KEY])))

    return app


app = make_server_app()
