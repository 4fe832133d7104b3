"""`python robustness_fl_driver.py OUT ROUNDS`: a federated run (fl_bridge's server loop, the real run folder
and checkpoints) with in-process clients instead of Ray, so the kill test can kill it cheaply."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp import Grid

from fl_bridge.client_app import run_train_task
from fl_bridge.config import RunConfig
from fl_bridge.server import run_federation
from fl_bridge.task import TASK_KEY, TrainTask


class InProcessGrid(Grid):
    """Every message is trained by an honest client in this process."""

    def set_run(self, run_id: int) -> None:
        pass

    @property
    def run(self):  # pragma: no cover
        raise NotImplementedError

    def create_message(self, *a, **k):  # pragma: no cover
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return [1, 2]

    def push_messages(self, messages):  # pragma: no cover
        raise NotImplementedError

    def pull_messages(self, message_ids):  # pragma: no cover
        raise NotImplementedError

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        replies = []
        for msg in messages:
            task = TrainTask.from_json(str(msg.content["config"][TASK_KEY]))
            replies.append(Message(run_train_task(task, msg.content["arrays"]), reply_to=msg))
        return replies


def config(out: str, rounds: int) -> RunConfig:
    return RunConfig(out=out, image_size=16, feature_maps=4, clients=4, per_round=2, rounds=rounds,
                     samples_per_client=16, batch_size=8, epochs=1, eval_every=rounds, episodes=4, shots=(1,), queries=5)


if __name__ == "__main__":
    from flwr.supercore.task_identity import TaskIdentity

    for attribute in ("_run_id", "_node_id", "_task_id"):
        setattr(TaskIdentity, attribute, 1)
    run_federation(InProcessGrid(), config(sys.argv[1], int(sys.argv[2])))
