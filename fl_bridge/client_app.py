"""The Flower ClientApp (Message API): one `train` handler for simulation and deployment.

A client rebuilds the model from the task (frozen base from the shared seed, refused if its
SHA-256 differs from the server's), decodes and validates the global payload, trains on its
partition (the server-assigned one, or with `--node-data` its own data from its node config:
`fl_bridge.data.node_share`) and answers with its encoded trained tensors and `num-examples`.
Any exception becomes an error reply that the server logs and drops.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fl_bridge.codec import decode, encode
from fl_bridge.data import client_data, dataset, node_share
from fl_bridge.errors import FLError
from fl_bridge.local import train_local
from fl_bridge.precision.engine import snap_frozen
from fl_bridge.model import base_hash, build_model, get_communicated, layout, set_communicated
from fl_bridge.task import NODE_PARTITION, TrainTask

log = logging.getLogger("fl_bridge.client")


def run_train_task(task: TrainTask, arrays: ArrayRecord) -> RecordDict:
    """Do one round of local training; the reply's content."""
    if task.fedmpq is not None:  # FedMPQ, AQFL, FPQ8: bit-plane messages (fl_bridge/fedmpq)
        from fl_bridge.fedmpq.client import train_fedmpq

        return train_fedmpq(task, arrays)
    model = build_model(task.model)
    if base_hash(model) != task.base_hash:
        raise FLError("the frozen base built from the shared seed does not match the server's hash")
    if task.int8 is not None:
        snap_frozen(model, task.int8.bits)  # an INT8 frozen base (FLoCoRA adapters trained in INT8)
    lay = layout(model)
    set_communicated(model, decode(arrays, lay, task.codec))
    images, labels = client_data(task.data, task.partition)
    pre = dataset(task.data.dataset, task.data.data_root, task.data.image_size).preprocessing
    loss = train_local(model, images, labels, pre, task.local, task.int8)
    log.info("partition %d: trained on %d images, loss %.4f", task.partition, len(labels), loss)
    tensors = get_communicated(model)
    if task.upload_codec is not None:  # HaLo-FL: upload the bw-bit weights of the forward pass
        from fl_bridge.halo.messages import forward_weights

        tensors = forward_weights(tensors, lay, task.int8.weight_bits)
    return RecordDict({
        "arrays": encode(tensors, lay, task.upload_codec or task.codec),
        "metrics": MetricRecord({"num-examples": int(len(labels)), "train-loss": float(loss),
                                 "partition-id": task.partition}),
    })


app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    task = TrainTask.from_config(msg.content["config"])
    if task.partition == NODE_PARTITION:  # --node-data: this SuperNode's own data, from its node config
        data, partition = node_share(task.data, context.node_config)
        task = replace(task, data=data, partition=partition)
    return Message(run_train_task(task, msg.content["arrays"]), reply_to=msg)
