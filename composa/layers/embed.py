"""Embed: look up a learned vector for each integer id."""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..errors import IdOutOfRangeError
from ..initializers import uniform_init
from ..model import Model
from ..types import Floats2d, Ints1d
from ..util import partial
from ._lookup import finish_lookup, init_table, lookup_attrs, select_ids

__all__ = ["Embed"]


@registry.layers("Embed.v1")
def Embed(
    nO: Optional[int] = None,
    nV: Optional[int] = None,
    *,
    column: Optional[int] = None,
    initializer: Optional[Callable] = None,
    dropout: Optional[float] = None,
) -> Model[Ints1d, Floats2d]:
    """Rows of the table E (nV, nO) for ids in [0, nV): Ints1d (batch,) -> (batch, nO).

    With `column`, the input is an Ints2d and the ids are taken from that column.
    `dropout` drops whole embedding columns (the same ones for every row) in training.
    """
    return Model(
        "embed",
        forward,
        init=partial(init_table, initializer or uniform_init),
        dims={"nO": nO, "nV": nV},
        attrs=lookup_attrs(column, dropout),
        params={"E": None},
    )


def forward(model: Model[Any, Floats2d], X: Any, is_train: bool) -> Tuple[Floats2d, Callable]:
    E = model.get_param("E")
    ids = select_ids(model, X)
    nV = E.shape[0]
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= nV):
        raise IdOutOfRangeError(
            f"ids must be in [0, nV={nV}), got ids from {int(ids.min())} to {int(ids.max())}",
            layer=model.name,
        )

    def scatter(dE: Floats2d, dY: Floats2d) -> None:
        model.ops.scatter_add(dE, ids, dY)

    return finish_lookup(model, X, E[ids], is_train, scatter)
