"""HashEmbed: embed arbitrary (uint64) ids by hashing each into 4 rows of a fixed-size table."""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..errors import ConfigurationError
from ..initializers import uniform_init
from ..model import Model
from ..types import Floats2d, Ints1d
from ..util import partial
from ._lookup import finish_lookup, init_table, lookup_attrs, select_ids

__all__ = ["HashEmbed"]

# The default seed is fixed (the reference uses the model's id), so the hashing, and
# therefore what trained weights mean, does not depend on model-creation order.
# Give different seeds to HashEmbeds of different features to decorrelate collisions.
DEFAULT_SEED = 0

# Each id selects this many rows; its vector is their sum.
N_HASHES = 4


@registry.layers("HashEmbed.v1")
def HashEmbed(
    nO: int,
    nV: int,
    *,
    seed: Optional[int] = None,
    column: Optional[int] = None,
    initializer: Optional[Callable] = None,
    dropout: Optional[float] = None,
) -> Model[Ints1d, Floats2d]:
    """Sum of 4 hashed rows of E (nV, nO) per id: Ints1d (batch,) of any ids -> (batch, nO).

    `seed` defaults to 0 (not the model id), see ``DEFAULT_SEED``. With `column`,
    the input is an Ints2d and ids come from that column.
    """
    if nV is not None and nV < 1:
        raise ConfigurationError(f"nV (table rows) must be at least 1, got {nV}", layer="hashembed")
    return Model(
        "hashembed",
        forward,
        init=partial(init_table, initializer or uniform_init),
        dims={"nO": nO, "nV": nV, "nI": None},
        attrs=lookup_attrs(column, dropout, seed=DEFAULT_SEED if seed is None else int(seed)),
        params={"E": None},
    )


def forward(model: Model[Any, Floats2d], X: Any, is_train: bool) -> Tuple[Floats2d, Callable]:
    E = model.get_param("E")
    ids = select_ids(model, X)
    nV = E.shape[0]
    ops = model.ops
    rows = ops.hash_rows(ops.as_contig(ids, dtype="uint64"), model.attrs["seed"], nV)

    def scatter(dE: Floats2d, dY: Floats2d) -> None:
        if rows.size:
            # Row i of dY goes to each of its N_HASHES table rows; broadcast, not repeated.
            ops.scatter_add(dE, rows, dY[:, None, :])

    return finish_lookup(model, X, ops.gather_add(E, rows), is_train, scatter)
