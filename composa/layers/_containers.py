"""Packing helpers shared by the container conversions and the with_* adapters.

:func:`flatten_list` joins a list of arrays into one, also when the list is empty;
:func:`padded_like` packs sequences back into the layout of a given Padded.
"""
from typing import Any, List, Optional, Tuple

from ..checks import describe
from ..errors import ShapeMismatchError
from ..types import Padded

# Private helpers: nothing here is exported through composa.layers.
__all__: list = []


def flatten_list(ops: Any, Xs: List[Any], *, like_shape: Optional[Tuple[int, ...]] = None) -> Any:
    """Concatenate the rows of a list of arrays; an empty list gives ``(0, ...)`` zeros."""
    if len(Xs) == 0:
        shape = (0,) + tuple(like_shape[1:]) if like_shape is not None else (0, 0)
        return ops.alloc(shape)
    return ops.flatten(Xs)


def padded_like(ops: Any, seqs: List[Any], like: Padded) -> Padded:
    """Pack `seqs` (in original order) into a Padded with the layout of `like`.

    Used on the way back, so a gradient lines up exactly with the Padded it belongs
    to, whatever order ties in length were sorted in.
    """
    xp = ops.xp
    n_steps, batch_size = like.data.shape[0], like.data.shape[1]
    if len(seqs) != batch_size:
        raise ShapeMismatchError(
            f"expected {batch_size} sequence gradients, got {describe(seqs)}", layer="padded2list"
        )
    features = tuple(seqs[0].shape[1:]) if len(seqs) else tuple(like.data.shape[2:])
    dtype = seqs[0].dtype if len(seqs) else like.data.dtype
    by_batch = ops.alloc((batch_size, n_steps) + features, dtype=dtype)
    if batch_size:
        indices = [int(i) for i in ops.to_numpy(like.indices)]
        ordered = [seqs[i] for i in indices]
        lengths = xp.asarray([len(seq) for seq in ordered], dtype="int32").reshape((-1, 1))
        if lengths.shape[0] != len(like.lengths) or bool(xp.any(lengths[:, 0] != xp.asarray(like.lengths))):
            raise ShapeMismatchError(
                f"the gradient's sequence lengths {ops.to_numpy(lengths[:, 0]).tolist()} do not match "
                f"the batch's lengths {ops.to_numpy(like.lengths).tolist()}",
                layer="padded2list",
            )
        mask = xp.arange(n_steps).reshape((1, -1)) < lengths
        by_batch[mask] = ops.flatten(ordered)
    data = ops.as_contig(xp.swapaxes(by_batch, 0, 1))
    return Padded(data, like.size_at_t, like.lengths, like.indices)
