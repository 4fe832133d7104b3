"""An in-process Flower `Grid`: the server loop's messages are handled one after the other by
the real client handler (`client_app.run_train_task`) in this process, without Ray or a
SuperLink. Same `run_federation`, same messages, codec and accounting; no timeouts, no crashes.
Used by `python -m fl_bridge precision-sweep`, where many small runs would each pay Ray's start-up."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from flwr.app import Error, Message
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from fl_bridge.client_app import run_train_task
from fl_bridge.task import TrainTask


@contextlib.contextmanager
def task_identity(run_id: int = 1, node_id: int = 1, task_id: int = 1) -> Iterator[None]:
    """Flower's process-wide task identity (needed to build messages), set for the block and
    restored after it; Flower's own processes set it themselves."""
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = run_id, node_id, task_id
    try:
        yield
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


class InlineGrid(Grid):
    """`nodes` virtual SuperNodes that all run in this process, sequentially."""

    def __init__(self, nodes: int = 1):
        self.nodes = nodes

    def set_run(self, run_id: int) -> None:
        pass

    @property
    def run(self):
        raise NotImplementedError("an InlineGrid has no Flower run")

    def create_message(self, *args, **kwargs):
        raise NotImplementedError("the server loop builds its messages itself")

    def get_node_ids(self) -> Iterable[int]:
        return list(range(1, self.nodes + 1))

    def push_messages(self, messages):
        raise NotImplementedError("use send_and_receive")

    def pull_messages(self, message_ids):
        raise NotImplementedError("use send_and_receive")

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        replies = []
        for msg in messages:
            try:
                task = TrainTask.from_config(msg.content["config"])
                replies.append(Message(run_train_task(task, msg.content["arrays"]), reply_to=msg))
            except Exception as e:  # noqa: BLE001 - a client failure becomes an error reply, as in Flower
                replies.append(Message(Error(code=0, reason=f"{type(e).__name__}: {e}"), reply_to=msg))
        return replies
