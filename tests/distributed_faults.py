"""A layer that fails on purpose on one rank of a distributed run (``composa train --code``)."""
import os
import signal
import time

from composa import Model, registry


@registry.layers("fail_on_rank.v1")
def fail_on_rank(rank: int, after: int, how: str) -> Model:
    """Pass rows through; on `rank`, after `after` training batches, raise, SIGKILL itself or hang."""
    calls = {"count": 0}

    def forward(model: Model, X, is_train: bool):
        if is_train and int(os.environ.get("RANK", "0")) == rank:
            calls["count"] += 1
            if calls["count"] > after:
                fail(how)
        return X, lambda dY: dY

    return Model("fail_on_rank", forward)


def fail(how: str) -> None:
    if how == "raise":
        raise ZeroDivisionError("injected failure on purpose")
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(3600)
