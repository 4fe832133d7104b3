"""The exceptions of the federated stage; the CLI turns each into one `fl_bridge: error:` line."""

from __future__ import annotations


class FLError(ValueError):
    """Bad user input for the federated stage (config, run folder, dataset)."""


class MalformedUpdate(ValueError):
    """A message payload that fails validation (size, dtype, NaN/Inf, layout); it is dropped."""


class DeployError(RuntimeError):
    """A deployment-chain step (merge, export, compile, bundle) that failed."""
