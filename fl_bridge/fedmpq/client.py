"""A FedMPQ / AQFL / FPQ8 client's round: decode the bit-plane message (its per-layer bits and steps
are the allocation the server chose for it), train with the layers fixed-point and the activations
quantized (`train.mixed_precision`), put the trained weights back on their grids, MSB-prune
(fedmpq), and answer with the bit-plane message of what it keeps."""

from __future__ import annotations

import logging

import numpy as np
from flwr.app import ArrayRecord, MetricRecord, RecordDict

from fl_bridge.data import client_data, dataset
from fl_bridge.errors import FLError
from fl_bridge.fedmpq import wire
from fl_bridge.fedmpq.planes import densities
from fl_bridge.fedmpq.train import lasso, mixed_precision, prune_all, requantize
from fl_bridge.local import train_local
from fl_bridge.model import base_hash, build_model, get_communicated, layout, set_communicated
from fl_bridge.task import TrainTask

log = logging.getLogger("fl_bridge.client")


def train_fedmpq(task: TrainTask, arrays: ArrayRecord) -> RecordDict:
    settings = task.fedmpq
    if settings is None:
        raise FLError("not a FedMPQ task")
    model = build_model(task.model)
    if base_hash(model) != task.base_hash:
        raise FLError("the frozen base built from the shared seed does not match the server's hash")
    lay = layout(model)
    codes, floats = wire.decode(arrays, lay, settings.representation, settings.b_min)
    set_communicated(model, {**floats, **{n: c.values() for n, c in codes.items()}})
    images, labels = client_data(task.data, task.partition)
    pre = dataset(task.data.dataset, task.data.data_root, task.data.image_size).preprocessing
    with mixed_precision(model, codes, settings.act_bits, settings.lam):
        loss = train_local(model, images, labels, pre, task.local)
    trained = requantize(model, codes)
    top = float(np.mean([densities(c)[-1] for c in trained.values()]))
    if settings.prune:
        trained = prune_all(trained, settings.eps, settings.b_min)
    pruned = sum(codes[n].bits - c.bits for n, c in trained.items())
    kept = {n: v for n, v in get_communicated(model).items() if n not in trained}
    log.info("partition %d: trained on %d images, loss %.4f, %d planes pruned", task.partition, len(labels), loss,
             pruned)
    return RecordDict({
        "arrays": wire.encode(trained, kept, lay),
        "metrics": MetricRecord({"num-examples": int(len(labels)), "train-loss": float(loss),
                                 "partition-id": task.partition, "planes-pruned": int(pruned),
                                 "top-plane-density": top,
                                 "lasso": float(sum(lasso(c) for c in trained.values()))}),
    })
