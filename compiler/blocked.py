"""Tile order: a convolution read only by a tiling max pool writes its output so
that the pool reads contiguous blocks.

A ph x pw max pool of stride (ph, pw) over (N, C, H, W) reads each window's
pixels through strided views (rows of OW elements, every pw-th one), and NumPy
runs strided loops several times slower than contiguous ones. When the image is
a convolution's output, its pixel order is free: it is the order of im2col's
columns. Lowering then asks im2col for the columns in tile order, (i, j,
OH / ph, OW / pw) for pixel (ph a + i, pw b + j), and the convolution writes
(N, ph * pw, C, OH * OW / (ph * pw)): the pool is a maximum over axis 1
(``max_pool_blocks``), its gradient ``max_pool_blocks_grad``, each block one
contiguous run per image (NumPy's loops are long: a loop's start costs what a
few hundred element operations do).

Nothing else may read the convolution's output in that order, so a convolution
qualifies only when (``plan_blocks``)

- it is a fused convolution (groups 1) whose epilogue is bias_add (axis 1) and
  relu, the ReLU moving after the pool (``plan_relu_moves``): the convolution is
  then one GEMM per image and tile offset (``matmul_tiles``), the bias a column of
  the weights;
- its readers are the pool, the pool's gradient and the ReLU's gradient (reading
  that pool gradient), and it is not a program output;
- the pool tiles it exactly (no padding, no dilation, stride = size, the image
  a whole number of tiles), and the tile has two or more pixels;
- the gradient (the ReLU's, else the pool's) is read only by bias_grad (axis 1)
  and by the weight gradient of the same convolution (whose columns take the
  same order: a sum over positions does not depend on their order), not by the
  input gradient, which would need image order back;
- the columns are fewer than twice the filters: tile-order columns are gathered
  in runs half as long, which costs more than the pooling saves when there are
  many of them (the CNN benchmark's first convolution, 9 columns and 16
  filters, qualifies; its second, 144 and 32, does not).

The ReLU's gradient then moves before the pool's, onto the pooled gradient:
relu_grad(max_pool_grad(dy, z, p), z) = max_pool_grad(relu_grad(dy, p), z, p),
since a window's gradient goes to a pixel equal to its maximum p, and z > 0
there exactly when p > 0 (a quarter of the elements, for 2 x 2 tiles). That
holds for any max pool of a ReLU's output (overlapping and padded windows too:
each window's share goes to a pixel equal to its maximum), so it is done in
image order as well (``lower_pool_grad``).

>>> from graphnn import Graph, Model
>>> g = Graph(); x = g.input("x", (None, 1, 8, 8))
>>> y = g.max_pool2d(g.conv2d(x, 8, 3, padding="same", activation="relu"), 2)
>>> m = Model(g, inputs=x, outputs=g.flatten(y)); m.compile(loss="mse", optimizer="sgd")
>>> sorted(i.kernel for i in m.program("train", 2).instructions if "blocks" in i.kernel)
['max_pool_blocks_routed', 'max_pool_blocks_routed_grad']
"""
from __future__ import annotations

from .ir import consumers, op_attrs, operands
from .ops.pool import pool_geometry
from .ops.window import pair

CONV_KEYS = ("strides", "padding", "dilation", "groups")


def _example_fused_step():
    """For the examples: the fused (not yet lowered) training graph of
    x (N, 1, 8, 8) -> conv2d 8 3x3 'same' + relu -> 2x2 max pool -> flatten, mse, SGD."""
    from graphnn import Graph, Model
    g = Graph()
    x = g.input("x", (None, 1, 8, 8))
    y = g.max_pool2d(g.conv2d(x, 8, 3, padding="same", activation="relu"), 2)
    m = Model(g, inputs=x, outputs=g.flatten(y))
    m.compile(loss="mse", optimizer="sgd")
    passes = {}
    m.program("train", 2, trace=lambda name, result: passes.setdefault(name, result))
    return passes["fuse"]

def plan_blocks(g, outputs=(), relu_moves=()) -> dict:
    """{convolution node: {"tile", "pool", "pool_grad", "relu_grad", "grad"}} for
    every convolution that qualifies (see the module's docstring); one with a
    ReLU qualifies only when the ReLU moves after the pool (``relu_moves``), so
    that the convolution is a GEMM alone.

    >>> fused = _example_fused_step()      # conv 8 3x3 'same' + relu, 2x2 max pool: fused, not lowered
    >>> plan_blocks(fused, ["loss"], plan_relu_moves(fused, ["loss"]))
    {'conv2d/relu': {'tile': (2, 2), 'pool': 'max_pool2d', 'pool_grad': 'max_pool2d/grad_max_pool2d_grad',
                     'relu_grad': 'conv2d/relu/grad_relu_grad', 'grad': 'conv2d/relu/grad_relu_grad',
                     'pooled_hw': [4, 4]}}
    >>> plan_blocks(fused, ["loss"])        # its ReLU stays before the pool: no plan
    {}
    """
    plans = {}
    outputs = set(outputs)
    for pool, d in g.nodes(data=True):
        if d["op"] == "max_pool2d":
            plan = _plan(g, pool, outputs)
            z = operands(g, pool)[0]
            if plan is not None and (z in relu_moves or g.nodes[z]["epilogue"][-1]["op"] != "relu"):
                plans[z] = plan
    return plans


def _plan(g, pool, outputs):
    z = operands(g, pool)[0]
    zd = g.nodes[z]
    if z in outputs or zd["op"] != "fused" or zd["anchor"]["op"] != "conv2d":
        return None
    conv = zd["anchor"]["attrs"]
    epilogue = [(p["op"], p["attrs"]) for p in zd["epilogue"]]
    x, w = operands(g, z)[:2]
    wshape = g.nodes[w]["shape"]
    ops = [op for op, _ in epilogue]        # a bias (a column of the weights) and a ReLU (moved) only
    if conv.get("groups", 1) != 1 or ops not in ([], ["bias_add"], ["relu"], ["bias_add", "relu"]):
        return None
    if ops[:1] == ["bias_add"] and (epilogue[0][1].get("axis") != 1
                                    or g.nodes[operands(g, z)[2]]["shape"] != (wshape[0],)):
        return None
    if wshape[1] * wshape[2] * wshape[3] >= 2 * wshape[0]:
        return None                         # many columns: tile order costs more than it saves
    attrs = op_attrs(g, pool)
    k, s, pads, (oh, ow) = pool_geometry(zd["shape"], attrs)
    if (tuple(s) != tuple(k) or pair(attrs["dilation"]) != (1, 1) or any(pads) or k[0] * k[1] < 2
            or (oh * k[0], ow * k[1]) != tuple(zd["shape"][2:])):
        return None
    grads = [r for r in consumers(g, z) if r != pool]
    pool_grad = next((r for r in grads if g.nodes[r]["op"] == "max_pool2d_grad"), None)
    relu_grad = next((r for r in grads if g.nodes[r]["op"] == "relu_grad"), None)
    if len(grads) != (pool_grad is not None) + (relu_grad is not None):
        return None
    if pool_grad is not None and (operands(g, pool_grad)[1:] != [z, pool]
                                  or op_attrs(g, pool_grad) != attrs or pool_grad in outputs):
        return None
    if relu_grad is not None and (pool_grad is None or operands(g, relu_grad) != [pool_grad, z]
                                  or consumers(g, pool_grad) != [relu_grad]
                                  or epilogue[-1][0] != "relu"):
        return None
    grad = relu_grad or pool_grad
    if grad is not None:
        if grad in outputs:
            return None
        for r in consumers(g, grad):
            rd = g.nodes[r]
            if rd["op"] == "bias_grad" and rd.get("axis") == 1 and operands(g, r) == [grad]:
                continue
            if (rd["op"] == "conv2d_grad_weight" and operands(g, r) == [x, grad]
                    and all(rd.get(key) == conv.get(key) for key in CONV_KEYS)):
                continue
            return None
    return {"tile": (k[0], k[1]), "pool": pool, "pool_grad": pool_grad, "relu_grad": relu_grad,
            "grad": grad, "pooled_hw": [oh, ow]}


def plan_relu_moves(g, outputs) -> set:
    """Fused convolutions (groups 1) ending in a ReLU whose output only a max pool
    reads (and that pool's and the ReLU's gradients, the ReLU's reading the
    pool's): their ReLU moves after the pool, relu(max_pool(z)) = max_pool(relu(z))
    on a quarter of the elements for 2 x 2 windows. The gradient does not change:
    a window whose maximum is not positive passes none back either way, and one
    whose maximum is positive has its first maximum at the same pixel in z as in
    relu(z). (Every window overlaps the image, so none is a maximum of padding.)

    >>> fused = _example_fused_step()      # conv 8 3x3 'same' + relu, 2x2 max pool: fused, not lowered
    >>> plan_relu_moves(fused, ["loss"]), plan_relu_moves(fused, ["loss", "conv2d/relu"])
    ({'conv2d/relu'}, set())
    """
    moves = set()
    for pool, d in g.nodes(data=True):
        if d["op"] != "max_pool2d":
            continue
        z = operands(g, pool)[0]
        zd = g.nodes[z]
        if (z in outputs or zd["op"] != "fused" or zd["anchor"]["op"] != "conv2d"
                or zd["anchor"]["attrs"].get("groups", 1) != 1 or zd["epilogue"][-1]["op"] != "relu"):
            continue
        grads = [r for r in consumers(g, z) if r != pool]
        if grads:
            pool_grad = next((r for r in grads if g.nodes[r]["op"] == "max_pool2d_grad"), None)
            if pool_grad is None or len(grads) != 2 or operands(g, pool_grad)[1:] != [z, pool]:
                continue
            if relu_after_pool_grad(g, pool_grad, outputs) not in grads:
                continue
        moves.add(z)
    return moves


def lower_pool_then_relu(rw, pool, z) -> bool:
    """pool = max_pool2d(z), z a convolution that lost its ReLU (plan_relu_moves):
    the pool, lowered as usual, under a new name, and ``pool`` its ReLU.

    >>> fused = _example_fused_step()      # conv 8 3x3 'same' + relu, 2x2 max pool: fused, not lowered
    >>> from graphnn.compiler.rewrite import OPERAND_ROLE, Rewriter
    >>> rw = Rewriter(fused, role=OPERAND_ROLE, share=True); rw.relu_moves = {"conv2d/relu": None}
    >>> lower_pool_then_relu(rw, "max_pool2d", "conv2d/relu"), rw.relu_moves
    (True, {'conv2d/relu': 'max_pool2d/max'})
    >>> [(n, fused.nodes[n]["op"], operands(fused, n)) for n in ("max_pool2d", "max_pool2d/max")]
    [('max_pool2d', 'relu', ['max_pool2d/max']), ('max_pool2d/max', 'max_pool2d', ['conv2d/relu'])]
    """
    moves = getattr(rw, "relu_moves", {})
    if z not in moves:
        return False
    from .ops import OPS
    attrs = op_attrs(rw.g, pool)
    pre = rw.emit(f"{pool}/max", "max_pool2d", [z], **attrs)
    moves[z] = pre
    if not lower_pool(rw, pre, z):
        OPS["max_pool2d"].lower(rw, pre, [z], attrs)
    rw.become(pool, "relu", [pre])
    return True


def lower_pool(rw, pool, z) -> bool:
    """max_pool2d(z) -> max_pool_blocks(z) when z was lowered in tile order.
    Run by the lower pass (then routed: route_max_pools):

    >>> fused = _example_fused_step()      # conv 8 3x3 'same' + relu, 2x2 max pool: fused, not lowered
    >>> from graphnn.compiler.lower import lower
    >>> low = lower(fused, ["loss"])
    >>> low.nodes["max_pool2d/max"]["op"], op_attrs(low, "max_pool2d/max")
    ('max_pool_blocks_routed', {'pooled_hw': [4, 4]})
    """
    plan = getattr(rw, "block_plans", {}).get(z)
    if plan is None:
        return False
    rw.become(pool, "max_pool_blocks", [z], pooled_hw=plan["pooled_hw"])
    return True


def relu_after_pool_grad(g, node, outputs=()):
    """The relu_grad(node, z) that is the only reader of max_pool2d_grad ``node``
    (dy, z, p), or None: z is then a ReLU's output, and the ReLU's gradient can
    move onto the pooled gradient (see the module's docstring).

    >>> fused = _example_fused_step()      # conv 8 3x3 'same' + relu, 2x2 max pool: fused, not lowered
    >>> relu_after_pool_grad(fused, "max_pool2d/grad_max_pool2d_grad", ["loss"])
    'conv2d/relu/grad_relu_grad'
    >>> pool_grad = "max_pool2d/grad_max_pool2d_grad"
    >>> relu_after_pool_grad(fused, pool_grad, ["loss", pool_grad]) is None    # an output stays as it is
    True
    """
    readers = consumers(g, node)
    if len(readers) != 1 or node in outputs:
        return None
    reader = readers[0]
    if g.nodes[reader]["op"] != "relu_grad" or operands(g, reader) != [node, operands(g, node)[1]]:
        return None
    return reader


def lower_pool_grad(rw, node, ins) -> bool:
    """The pool's gradient (and the ReLU's after it) in tile order; or, in image
    order, the ReLU's gradient moved onto the pooled gradient. False when neither
    applies (the op's own hook lowers the node). In tile order, run by the lower
    pass: the ReLU's gradient comes first, then the pool's in tile order (routed):

    >>> fused = _example_fused_step()      # conv 8 3x3 'same' + relu, 2x2 max pool: fused, not lowered
    >>> from graphnn.compiler.lower import lower
    >>> low = lower(fused, ["loss"])
    >>> [(n, low.nodes[n]["op"], operands(low, n))
    ...  for n in ("max_pool2d/grad_max_pool2d_grad", "conv2d/relu/grad_relu_grad")]
    [('max_pool2d/grad_max_pool2d_grad', 'relu_grad', ['flatten/grad_reshape', 'max_pool2d']),
     ('conv2d/relu/grad_relu_grad', 'max_pool_blocks_routed_grad',
      ['max_pool2d/grad_max_pool2d_grad', 'max_pool2d/max/routes'])]
    """
    dy, z, pool = ins
    plan = getattr(rw, "block_plans", {}).get(z)
    # the maxima routing reads: the pool's own, before the ReLU moved after it
    maxima = getattr(rw, "relu_moves", {}).get(z) or pool
    if plan is None:
        outputs = getattr(rw, "outputs", None)
        relu = None if outputs is None else relu_after_pool_grad(rw.g, node, outputs)
        if relu is None:
            return False
        from .ops import OPS
        attrs = op_attrs(rw.g, node)
        rw.become(node, "relu_grad", [dy, pool])
        rw.become(relu, "max_pool2d_grad", [node, z, maxima], **attrs)
        OPS["max_pool2d_grad"].lower(rw, relu, [node, z, maxima], attrs)
        return True
    hw = plan["pooled_hw"]
    if plan["relu_grad"] is None:
        rw.become(node, "max_pool_blocks_grad", [dy, z, maxima], pooled_hw=hw)
    else:                           # the ReLU's gradient first, on the pooled gradient
        rw.become(node, "relu_grad", [dy, pool])
        rw.become(plan["relu_grad"], "max_pool_blocks_grad", [node, z, maxima], pooled_hw=hw)
    grad = plan["grad"]
    for reader in consumers(rw.g, grad):    # the channels are axis 2 in tile order
        if rw.g.nodes[reader]["op"] == "bias_grad":
            rw.become(reader, "bias_grad", [grad], axis=2)
    return True
