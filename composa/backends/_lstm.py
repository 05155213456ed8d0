"""The LSTM engine behind ``Ops.lstm_forward_training``, ``lstm_forward_inference`` and ``backprop_lstm``.

The step loops run over time-major packed rows (the rows of step 0, then step 1, ...),
written once against ``ops.xp`` so every backend runs them. ``Plan`` holds one call's
sizes and weight slices; ``Packing`` turns the LSTM layer's Padded batches into packed
rows and back.
"""
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

import numpy

from ..errors import ShapeMismatchError
from ._checks import check_lengths, check_ndim

if TYPE_CHECKING:  # annotations only: ops.py imports this module
    from .ops import Ops

__all__ = ["forward_training", "forward_inference", "backprop", "Plan", "Packing"]


def forward_training(
    ops: "Ops", params: Any, H0: Any, C0: Any, X: Any, size_at_t: Any
) -> Tuple[Any, Any]:
    """(Y, state) of the LSTM over packed rows; the layouts are in ``Ops.lstm_forward_training``."""
    return _forward(ops, params, H0, C0, X, size_at_t, keep_state=True)


def forward_inference(ops: "Ops", params: Any, H0: Any, C0: Any, X: Any, size_at_t: Any) -> Any:
    """As forward_training, returning only Y."""
    return _forward(ops, params, H0, C0, X, size_at_t, keep_state=False)[0]


def backprop(
    ops: "Ops", dY: Any, lengths: Any, params: Any, fwd_state: Any, *, return_initial: bool = False
) -> Tuple[Any, ...]:
    """Backprop through forward_training: (dX, d_params), plus (dH0, dC0) if `return_initial`."""
    layers, X, plan = fwd_state
    if dY.shape[0] != X.shape[0]:
        raise ShapeMismatchError(
            f"backprop_lstm: dY has {dY.shape[0]} rows but the forward pass had {X.shape[0]}"
        )
    nH = plan.nH
    d_params = ops.alloc((params.shape[0],), dtype=params.dtype)
    dH0 = ops.alloc((plan.depth, plan.dirs, nH), dtype=dY.dtype)
    dC0 = ops.alloc((plan.depth, plan.dirs, nH), dtype=dY.dtype)
    to_torch = ops.xp.asarray(plan.to_torch_order)
    gate_order = ops.xp.asarray(plan.gate_order)
    d_out = dY
    for layer in reversed(range(plan.depth)):
        d_input = None
        for direction in range(plan.dirs):
            X_in, acts, C, tanh_C, Y, h0, c0 = layers[layer][direction]
            W_ih, _, W_hh, _, slices = plan.weights(params, layer, direction)
            W_ih, W_hh = W_ih[gate_order], W_hh[gate_order]
            dG, dh0, dc0 = _backward_steps(
                ops, d_out[:, direction * nH : (direction + 1) * nH], acts, C, tanh_C, c0, W_hh, plan, direction
            )
            dH0[layer, direction] = dh0
            dC0[layer, direction] = dc0
            d_W_ih, d_b_ih, d_W_hh, d_b_hh = (d_params[s] for s in slices)
            d_W_ih += ops.gemm(dG, X_in, trans1=True)[to_torch].ravel()
            d_bias = dG.sum(axis=0)[to_torch]
            d_b_ih += d_bias
            d_b_hh += d_bias
            d_W_hh += _d_W_hh(ops, dG, Y, h0, plan, direction)[to_torch].ravel()
            if d_input is None:
                d_input = ops.gemm(dG, W_ih)
            else:
                d_input += ops.gemm(dG, W_ih)
        d_out = d_input
    if return_initial:
        return d_out, d_params, dH0, dC0
    return d_out, d_params


def _d_W_hh(ops: "Ops", dG: Any, Y: Any, h0: Any, plan: "Plan", direction: int) -> Any:
    """``dG.T @ H_prev``, H_prev the state each row started from; sliced, not gathered, when
    every step has the same rows."""
    N, b = Y.shape[0], plan.batch
    if N and all(size == b for size in plan.sizes):
        first, rest = (slice(0, b), slice(b, N)) if direction == 0 else (slice(N - b, N), slice(0, N - b))
        shifted = slice(0, N - b) if direction == 0 else slice(b, N)
        d_W = ops.gemm(dG[rest], Y[shifted], trans1=True)
        d_W += dG[first].sum(axis=0)[:, None] * h0[None, :]
        return d_W
    prev = ops.xp.asarray(plan.prev_rows(direction))
    H_prev = ops.xp.concatenate((Y, h0[None].astype(Y.dtype)))[prev]
    return ops.gemm(dG, H_prev, trans1=True)


def _forward(
    ops: "Ops", params: Any, H0: Any, C0: Any, X: Any, size_at_t: Any, keep_state: bool
) -> Tuple[Any, Any]:
    plan = Plan.make(ops, params, H0, C0, X, size_at_t)
    layers = []
    inputs = X
    for layer in range(plan.depth):
        outputs = []
        states = []
        for direction in range(plan.dirs):
            W_ih, b_ih, W_hh, b_hh, _ = plan.weights(params, layer, direction)
            h0, c0 = H0[layer, direction], C0[layer, direction]
            Y_dir, acts, C, tanh_C = _forward_steps(
                ops, inputs, W_ih, b_ih + b_hh, W_hh, h0, c0, plan, direction
            )
            outputs.append(Y_dir)
            states.append((inputs, acts, C, tanh_C, Y_dir, h0, c0) if keep_state else None)
        layers.append(states)
        inputs = outputs[0] if plan.dirs == 1 else ops.xp.concatenate(outputs, axis=1)
    return inputs, (layers, X, plan)


def _forward_steps(
    ops: "Ops", X: Any, W_ih: Any, bias: Any, W_hh: Any, h0: Any, c0: Any, plan: "Plan", direction: int
) -> Tuple[Any, Any, Any, Any]:
    """One layer and direction: (Y, gate activations, cell states, their tanh), as packed rows.

    Gates are kept in the order (o, i, f, g) so that the three sigmoid gates are adjacent,
    and the sigmoid rows of the weights are halved: then one tanh over all four gates and
    ``0.5 t + 0.5`` on the first three give every activation, since
    ``sigmoid(z) = 0.5 tanh(z / 2) + 0.5`` (halving is exact in floating point).
    """
    xp = ops.xp
    nH = plan.nH
    N = X.shape[0]
    dtype = X.dtype
    scale = xp.asarray(plan.gate_scale(dtype))
    gate_order = xp.asarray(plan.gate_order)
    W_ih = W_ih[gate_order] * scale[:, None]
    W_hh_T = xp.ascontiguousarray((W_hh[gate_order] * scale[:, None]).T)
    acts = ops.gemm(X, W_ih, trans2=True)
    gate_bias = bias[gate_order] * scale
    Y = ops.alloc((N, nH), dtype=dtype, zeros=False)
    C = ops.alloc((N, nH), dtype=dtype, zeros=False)
    tanh_C = ops.alloc((N, nH), dtype=dtype, zeros=False)
    batch = plan.batch
    recurrent = ops.alloc((batch, 4 * nH), dtype=dtype, zeros=False)
    hp = ops.alloc((batch, nH), dtype=dtype, zeros=False)
    cp = ops.alloc((batch, nH), dtype=dtype, zeros=False)
    kernels = ops._kernels_for(acts, W_hh_T, h0, c0) if N else None
    if kernels is not None:
        sizes, offsets = plan.host_arrays()
        kernels.lstm_forward_steps(
            acts, gate_bias, W_hh_T, h0, c0, sizes, offsets, direction == 1, Y, C, tanh_C, hp, cp, recurrent
        )
        return Y, acts, C, tanh_C
    acts += gate_bias  # the kernel adds it in its pass over the gates
    product = ops.alloc((batch, nH), dtype=dtype, zeros=False)
    hp[...] = h0
    cp[...] = c0
    prev_start, prev_size = 0, 0
    for t in plan.step_order(direction):
        start, b = plan.offsets[t], plan.sizes[t]
        end = start + b
        if prev_size >= b:  # every row continues a sequence: read the last step in place
            h_prev, c_prev = Y[prev_start : prev_start + b], C[prev_start : prev_start + b]
        else:  # some sequences start here (reverse direction): the rest take h0, c0
            if prev_size:
                hp[:prev_size] = Y[prev_start : prev_start + prev_size]
                cp[:prev_size] = C[prev_start : prev_start + prev_size]
                hp[prev_size:b] = h0
                cp[prev_size:b] = c0
            h_prev, c_prev = hp[:b], cp[:b]
        G = acts[start:end]
        G += ops.gemm(h_prev, W_hh_T, out=recurrent[:b])
        xp.tanh(G, out=G)
        sig = G[:, : 3 * nH]
        sig *= 0.5
        sig += 0.5
        c = C[start:end]
        xp.multiply(G[:, 2 * nH : 3 * nH], c_prev, out=c)
        c += xp.multiply(G[:, nH : 2 * nH], G[:, 3 * nH :], out=product[:b])
        xp.multiply(xp.tanh(c, out=tanh_C[start:end]), G[:, :nH], out=Y[start:end])
        prev_start, prev_size = start, b
    return Y, acts, C, tanh_C


def _backward_steps(
    ops: "Ops", dY: Any, acts: Any, C: Any, tanh_C: Any, c0: Any, W_hh: Any, plan: "Plan", direction: int
) -> Tuple[Any, Any, Any]:
    """Gradients of the gate pre-activations (N, 4nH, order o, i, f, g), and of h0 and c0.

    Each step works on its own few rows, which stay in cache: that is faster than
    computing the step-independent products for all N rows up front (those passes are
    memory-bound and strided), and than allocating big temporaries (page faults).
    """
    xp = ops.xp
    nH = plan.nH
    N = acts.shape[0]
    dtype = acts.dtype
    batch = plan.batch
    # (1 - a) (a + k) is s (1 - s) for the sigmoid gates (k = 0) and 1 - g**2 for g (k = 1).
    dG = ops.alloc((N, 4 * nH), dtype=dtype, zeros=False)
    dh_prev = ops.alloc((batch, nH), dtype=dtype, zeros=False)
    dc_prev = ops.alloc((batch, nH), dtype=dtype, zeros=False)
    dh0 = ops.alloc((nH,), dtype=dtype)
    dc0 = ops.alloc((nH,), dtype=dtype)
    kernels = ops._kernels_for(acts, C, tanh_C, c0, W_hh) if N and dY.dtype == dtype else None
    if kernels is not None:
        sizes, offsets = plan.host_arrays()
        kernels.lstm_backward_steps(
            xp.ascontiguousarray(dY), acts, C, tanh_C, c0, W_hh, sizes, offsets, direction == 1, dG, dh0, dc0, dh_prev, dc_prev
        )
        return dG, dh0, dc0
    shift = xp.asarray(numpy.repeat(numpy.asarray([0.0, 0.0, 0.0, 1.0], dtype=dtype), nH))
    derivative = ops.alloc((batch, 4 * nH), dtype=dtype, zeros=False)
    scratch = ops.alloc((batch, 4 * nH), dtype=dtype, zeros=False)
    factors = ops.alloc((batch, 4, nH), dtype=dtype, zeros=False)
    dh = ops.alloc((batch, nH), dtype=dtype, zeros=False)
    dc = ops.alloc((batch, nH), dtype=dtype, zeros=False)
    cp = ops.alloc((batch, nH), dtype=dtype, zeros=False)
    carried = 0  # rows of this step that receive dh_prev, dc_prev from the step after it
    order = plan.step_order(direction)[::-1]
    for position, t in enumerate(order):
        start, b = plan.offsets[t], plan.sizes[t]
        end = start + b
        next_b = plan.sizes[order[position + 1]] if position + 1 < len(order) else 0
        # The cell state this step started from: the next step of this loop, or c0.
        if next_b >= b:
            next_start = plan.offsets[order[position + 1]]
            c_prev = C[next_start : next_start + b]
        else:
            if next_b:
                next_start = plan.offsets[order[position + 1]]
                cp[:next_b] = C[next_start : next_start + next_b]
            cp[next_b:b] = c0
            c_prev = cp[:b]
        A = acts[start:end]
        o, i, f, g = A[:, :nH], A[:, nH : 2 * nH], A[:, 2 * nH : 3 * nH], A[:, 3 * nH :]
        dh_t = dh[:b]
        if carried == b:
            xp.add(dY[start:end], dh_prev[:b], out=dh_t)
        else:
            dh_t[...] = dY[start:end]
            if carried:
                dh_t[:carried] += dh_prev[:carried]
        D = xp.subtract(1.0, A, out=derivative[:b])
        D *= xp.add(A, shift, out=scratch[:b])
        tc = tanh_C[start:end]
        Q = factors[:b]
        q_o = xp.multiply(dh_t, tc, out=Q[:, 0])
        # dc = dh o (1 - tanh(c)**2) + dc_next = o (dh - q_o tanh(c)) + dc_next
        dc_t = xp.multiply(q_o, tc, out=dc[:b])
        xp.subtract(dh_t, dc_t, out=dc_t)
        dc_t *= o
        if carried:
            dc_t[:carried] += dc_prev[:carried]
        xp.multiply(dc_t, g, out=Q[:, 1])
        xp.multiply(dc_t, c_prev, out=Q[:, 2])
        xp.multiply(dc_t, i, out=Q[:, 3])
        dG_t = xp.multiply(Q.reshape((b, 4 * nH)), D, out=dG[start:end])
        ops.gemm(dG_t, W_hh, out=dh_prev[:b])
        xp.multiply(dc_t, f, out=dc_prev[:b])
        carried = min(b, next_b)
        if b > next_b:  # rows whose previous state was the initial state
            dh0 += dh_prev[next_b:b].sum(axis=0)
            dc0 += dc_prev[next_b:b].sum(axis=0)
    return dG, dh0, dc0


class Plan:
    """Sizes and offsets of one LSTM call, on the host, shared by forward and backward."""

    def __init__(self, depth: int, dirs: int, nH: int, nI: int, sizes: List[int]) -> None:
        self.depth, self.dirs, self.nH, self.nI = depth, dirs, nH, nI
        self.sizes = sizes
        self.offsets = [0] * len(sizes)
        for t in range(1, len(sizes)):
            self.offsets[t] = self.offsets[t - 1] + sizes[t - 1]
        self.batch = sizes[0] if sizes else 0
        self._slices: Dict[Tuple[int, int], List[Tuple[slice, Tuple[int, ...]]]] = {}
        offset = 0
        for layer in range(depth):
            n_in = nI if layer == 0 else nH * dirs
            for direction in range(dirs):
                entries: List[Tuple[slice, Tuple[int, ...]]] = []
                for shape in ((4 * nH, n_in), (4 * nH,), (4 * nH, nH), (4 * nH,)):
                    size = int(numpy.prod(shape))
                    entries.append((slice(offset, offset + size), shape))
                    offset += size
                self._slices[layer, direction] = entries
        self.n_params = offset

    @classmethod
    def make(cls, ops: "Ops", params: Any, H0: Any, C0: Any, X: Any, size_at_t: Any) -> "Plan":
        """The plan of one call, after checking the shapes of its arguments."""
        op = "lstm_forward"
        check_ndim(op, H0, 3, "H0")
        check_ndim(op, X, 2, "X")
        check_ndim(op, params, 1, "params")
        if tuple(C0.shape) != tuple(H0.shape):
            raise ShapeMismatchError(f"{op}: H0 has shape {tuple(H0.shape)} but C0 has {tuple(C0.shape)}")
        depth, dirs, nH = (int(d) for d in H0.shape)
        if dirs not in (1, 2):
            raise ShapeMismatchError(f"{op}: H0 must be (depth, dirs, nH) with dirs 1 or 2, got {tuple(H0.shape)}")
        sizes = check_lengths(ops, op, size_at_t, X.shape[0])
        if sizes.size > 1 and (numpy.diff(sizes) > 0).any():
            raise ShapeMismatchError(f"{op}: size_at_t must be non-increasing, got {sizes.tolist()[:10]}...")
        plan = cls(depth, dirs, nH, int(X.shape[1]), sizes.tolist())
        if params.shape[0] != plan.n_params:
            raise ShapeMismatchError(
                f"{op}: expected {plan.n_params} params for depth={depth}, dirs={dirs}, nH={nH}, "
                f"nI={X.shape[1]}, got {params.shape[0]}"
            )
        return plan

    def weights(self, params: Any, layer: int, direction: int) -> Tuple[Any, Any, Any, Any, List[slice]]:
        """Views of W_ih, b_ih, W_hh, b_hh of one layer and direction in `params`, and their slices."""
        entries = self._slices[layer, direction]
        arrays = [params[s].reshape(shape) for s, shape in entries]
        return arrays[0], arrays[1], arrays[2], arrays[3], [s for s, _ in entries]

    def host_arrays(self) -> Tuple[Any, Any]:
        """The sizes and offsets as int64 numpy arrays (for the compiled step loops)."""
        return numpy.asarray(self.sizes, dtype="int64"), numpy.asarray(self.offsets, dtype="int64")

    def step_order(self, direction: int) -> List[int]:
        """The steps in the order `direction` (0 forward, 1 reverse) visits them."""
        steps = list(range(len(self.sizes)))
        return steps if direction == 0 else steps[::-1]

    @property
    def gate_order(self) -> Any:
        """Rows of torch's (i, f, g, o) gate blocks in the kernels' order (o, i, f, g)."""
        return numpy.concatenate([numpy.arange(block * self.nH, (block + 1) * self.nH) for block in (3, 0, 1, 2)])

    @property
    def to_torch_order(self) -> Any:
        """Inverse of gate_order: rows of the kernels' gate blocks back in torch's order."""
        return numpy.argsort(self.gate_order)

    def gate_scale(self, dtype: Any) -> Any:
        """0.5 for the sigmoid gates (o, i, f), 1 for g: sigmoid(z) = 0.5 tanh(z / 2) + 0.5."""
        return numpy.repeat(numpy.asarray([0.5, 0.5, 0.5, 1.0], dtype=dtype), self.nH)

    def prev_rows(self, direction: int) -> Any:
        """For each packed row, the row holding its previous state; N (one past the end) for h0."""
        sizes = numpy.asarray(self.sizes, dtype="int64")
        offsets = numpy.asarray(self.offsets, dtype="int64")
        N = int(sizes.sum())
        step = numpy.repeat(numpy.arange(len(sizes)), sizes)
        rank = numpy.arange(N) - numpy.repeat(offsets, sizes)
        prev_step = step - 1 if direction == 0 else step + 1
        inside = (prev_step >= 0) & (prev_step < len(sizes))
        clipped = numpy.clip(prev_step, 0, max(len(sizes) - 1, 0))
        if N:
            inside &= rank < sizes[clipped]
            return numpy.where(inside, offsets[clipped] + rank, N)
        return numpy.zeros(0, dtype="int64")


class Packing:
    """Gather the valid rows of a (T, B, F) padded array into time-major packed rows, and back.

    The kernels want the rows of step 0, then step 1, ..., with the sequences that
    are still running first in every step, i.e. columns sorted by decreasing
    length. Padded batches usually are; if not, the columns are reordered here.
    """

    def __init__(self, ops: "Ops", rows: Any, columns: Any, size_at_t: Any, T: int, B: int) -> None:
        self.ops = ops
        self.rows, self.columns = rows, columns
        self.size_at_t = size_at_t
        self.T, self.B = T, B
        # Every sequence runs all T steps: the packed rows are the padded array itself.
        self.dense = len(size_at_t) == T and bool((size_at_t == B).all())

    @classmethod
    def make(cls, ops: "Ops", lengths: Any, T: int, B: int) -> "Packing":
        """The packing of a Padded batch with `lengths`, T steps and B columns."""
        host = ops.to_numpy(lengths).astype("int64")
        if host.size and (host.min() < 0 or host.max() > T):
            raise ShapeMismatchError(
                f"Padded lengths must be in [0, T={T}], got min {host.min()} and max {host.max()}",
                layer="lstm",
            )
        order = numpy.argsort(-host, kind="stable")
        sorted_lengths = host[order]
        steps = int(sorted_lengths[0]) if sorted_lengths.size else 0
        size_at_t = (sorted_lengths[None, :] > numpy.arange(steps)[:, None]).sum(axis=1)
        # (time, column) of every packed row, step-major.
        valid = numpy.arange(B)[None, :] < size_at_t[:, None]
        times, ranks = numpy.nonzero(valid)
        xp = ops.xp
        return cls(
            ops, xp.asarray(times), xp.asarray(order[ranks]), size_at_t.astype("int32"), T, B
        )

    def pack(self, data: Any) -> Any:
        """(T, B, F) padded data -> (N, F) packed rows, contiguous."""
        if self.dense:
            return self.ops.as_contig(data.reshape((self.T * self.B, data.shape[2])))
        return self.ops.as_contig(data[self.rows, self.columns])

    def unpack(self, packed: Any, width: int) -> Any:
        """(N, width) packed rows -> (T, B, width) padded data, zeros past each sequence's end."""
        if self.dense:
            return packed.reshape((self.T, self.B, width))
        out = self.ops.alloc((self.T, self.B, width), dtype=packed.dtype)
        out[self.rows, self.columns] = packed
        return out
