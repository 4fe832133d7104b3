"""Client data: the base split of a `train/` dataset, cut into LDA partitions.

Every party rebuilds the same dataset and partition from the `DataTask` (datasets are generated
or read from local disk, never downloaded). The loaders are memoised per process, read-only, so
a simulation worker that trains several clients builds them once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache

import numpy as np

from fl_bridge.config import RunConfig
from fl_bridge.errors import FLError
from fl_bridge.model import ModelConfig
from fl_bridge.partition import lda_partition
from fl_bridge.task import DataTask
from train.datasets import DatasetError, FewShotData, load_dataset


@lru_cache(maxsize=2)
def dataset(name: str, data_root: str, image_size: int) -> FewShotData:
    try:
        return load_dataset(name, data_root or None, image_size)
    except DatasetError as e:
        raise FLError(str(e)) from None


@lru_cache(maxsize=4)
def partitions(task: DataTask) -> tuple[np.ndarray, ...]:
    """Indices into the base split, one array per client."""
    labels = dataset(task.dataset, task.data_root, task.image_size).base.labels
    try:
        parts = lda_partition(labels, task.clients, task.lda_alpha, task.seed, task.samples_per_client or None)
    except ValueError as e:
        raise FLError(str(e)) from None
    return tuple(parts)


def client_data(task: DataTask, partition: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 NCHW images, base-class labels) of one client."""
    if not 0 <= partition < task.clients:
        raise FLError(f"partition {partition} is outside 0..{task.clients - 1}")
    base = dataset(task.dataset, task.data_root, task.image_size).base
    idx = partitions(task)[partition]
    return np.asarray(base.images[idx]), np.asarray(base.labels[idx])


def node_share(task: DataTask, node_config: Mapping[str, object]) -> tuple[DataTask, int]:
    """A SuperNode's own data (`--node-data`): share `partition-id` of `num-partitions` (LDA with
    the run's alpha and seed; default 0 of 1, all of it) of the dataset in its `data-folder`
    (default: the run's data root); as the DataTask and partition the client trains on."""
    try:
        pid, num = int(node_config.get("partition-id", 0)), int(node_config.get("num-partitions", 1))
    except (TypeError, ValueError):
        raise FLError(f"node config partition-id / num-partitions {dict(node_config)} are not integers") from None
    if not 0 <= pid < num:
        raise FLError(f"node config: partition-id {pid} is outside 0..{num - 1} (num-partitions {num})")
    folder = str(node_config.get("data-folder", task.data_root))
    return replace(task, data_root=folder, clients=num), pid


def model_config(cfg: RunConfig, data: FewShotData) -> ModelConfig:
    """The model of a run on `data`: its input channels, one output per base class."""
    return cfg.model_config(int(data.base.labels.max()) + 1, int(data.base.images.shape[1]))
