"""lower: rewrite convolution into im2col + GEMM, and padded pooling into pad + pool.

    conv2d(x, w)             -> y = reshape(matmul(reshape(w), im2col(pad2d(x))))
    conv2d_grad_weight(x, dy) -> reshape(sum_to(matmul(reshape(dy), cols^T)))
    conv2d_grad_input(dy, w)  -> crop2d(col2im(matmul(reshape(w)^T, reshape(dy))))
    max/avg_pool2d, padded    -> pool(pad2d(x))   (and crop2d after the gradient)

The columns of an input are built once and shared by the forward convolution
and its weight gradient (the same ``im2col`` node), so the backward pass does
not rebuild them. A rewritten node keeps its name, so everything that read it
still does; the reshapes are views and cost nothing at run time.

>>> from graphnn.compiler.ir import new_graph, add_op
>>> from graphnn.compiler.pipeline import check_graph
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 1, 5, 5), dtype="float32")
>>> _ = add_op(g, "w", "param", [], shape=(4, 1, 3, 3), dtype="float32")
>>> _ = add_op(g, "y", "conv2d", ["x", "w"], padding="same")
>>> sorted(d["op"] for _, d in lower(check_graph(g, ["y"])).nodes(data=True))
['im2col', 'input', 'matmul', 'pad2d', 'param', 'reshape', 'reshape']
"""
from __future__ import annotations

import networkx as nx

from .infer import infer_node
from .ir import add_op, copy_graph, op_attrs, operands, unique_name
from .ops import OPS
from .ops.conv import conv_geometry, pair, pool_geometry, uncounted_margins

_CONV_KEYS = ("strides", "dilation")


class _Lowering:
    def __init__(self, g: nx.MultiDiGraph):
        self.g = g
        self.memo: dict = {}

    def emit(self, base: str, op: str, inputs: list, **attrs) -> str:
        key = (op, tuple(inputs), repr(sorted(attrs.items())))   # shared when asked twice
        if key in self.memo:
            return self.memo[key]
        name = unique_name(self.g, base)
        add_op(self.g, name, op, inputs, role=self.g.nodes[inputs[0]].get("role", "forward"), **attrs)
        self.g.nodes[name].update(OPS[op].check_attrs(attrs)[0])
        infer_node(self.g, name)
        self.memo[key] = name
        return name

    def become(self, node: str, op: str, inputs: list, **attrs) -> None:
        """Turn ``node`` into ``op(*inputs)``, keeping its name and its readers."""
        d = self.g.nodes[node]
        keep = {k: d[k] for k in ("source", "group", "role") if k in d}
        for src in list(self.g.predecessors(node)):
            while self.g.has_edge(src, node):
                self.g.remove_edge(src, node)
        d.clear()
        d.update(op=op, **keep, **attrs)
        for port, src in enumerate(inputs):
            self.g.add_edge(src, node, port=port)
        d.update(OPS[op].check_attrs(attrs)[0])
        infer_node(self.g, node)

    def padded(self, node, x, pads, value=0.0):
        return self.emit(f"{x}/pad", "pad2d", [x], pads=list(pads), value=value) if any(pads) else x

    def columns(self, node, x, w_shape, attrs):
        pads, _ = conv_geometry(self.g.nodes[x]["shape"], w_shape, attrs)
        xp = self.padded(node, x, pads)
        return self.emit(f"{x}/im2col", "im2col", [xp], kernel_size=list(w_shape[2:]),
                         strides=list(pair(attrs["strides"])), dilation=list(pair(attrs["dilation"])))

    def weight_matrix(self, w, ws, groups):
        """(F, C/G, KH, KW) as one matrix, or a stack of one matrix per group."""
        f, k = ws[0], ws[1] * ws[2] * ws[3]
        shape = [f, k] if groups == 1 else [groups, f // groups, k]
        return self.emit(f"{w}/matrix", "reshape", [w], shape=shape)

    def per_group(self, x, groups, rows):
        """(N, rows, L) viewed as (N, G, rows / G, L): a grouped convolution's
        GEMMs are one batched matmul over the groups (the reshapes are views)."""
        if groups == 1:
            return x
        n, _, length = self.g.nodes[x]["shape"]
        return self.emit(f"{x}/groups", "reshape", [x], shape=[n, groups, rows // groups, length])

    # ------------------------------------------------------------ rewrites
    def conv2d(self, node, ins, attrs):
        x, w = ins
        ws, (n, f, oh, ow) = self.g.nodes[w]["shape"], self.g.nodes[node]["shape"]
        groups = attrs.get("groups", 1)
        cols = self.per_group(self.columns(node, x, ws, attrs), groups, groups * ws[1] * ws[2] * ws[3])
        ym = self.emit(f"{node}/gemm", "matmul", [self.weight_matrix(w, ws, groups), cols])
        self.become(node, "reshape", [ym], shape=[n, f, oh, ow])

    def conv2d_grad_weight(self, node, ins, attrs):
        x, dy = ins
        ws = self.g.nodes[node]["shape"]
        n, f, oh, ow = self.g.nodes[dy]["shape"]
        groups, k = attrs.get("groups", 1), ws[1] * ws[2] * ws[3]
        cols = self.per_group(self.columns(node, x, ws, attrs), groups, groups * k)
        dym = self.per_group(self.emit(f"{dy}/matrix", "reshape", [dy], shape=[n, f, oh * ow]), groups, f)
        per_sample = self.emit(f"{node}/gemm", "matmul", [dym, cols], transpose_b=True)
        total = [ws[0], k] if groups == 1 else [groups, ws[0] // groups, k]
        summed = self.emit(f"{node}/sum", "sum_to", [per_sample], shape=total)
        self.become(node, "reshape", [summed], shape=list(ws))

    def conv2d_grad_input(self, node, ins, attrs):
        dy, w = ins
        ws, xs = self.g.nodes[w]["shape"], self.g.nodes[node]["shape"]
        n, f, oh, ow = self.g.nodes[dy]["shape"]
        pads, _ = conv_geometry(xs, ws, attrs)
        hw = [xs[2] + pads[0] + pads[1], xs[3] + pads[2] + pads[3]]
        groups = attrs.get("groups", 1)
        wm = self.weight_matrix(w, ws, groups)
        # Stride 1: pad dy's rows to the padded image's width (zeros), so the
        # columns come out "wide" and col2im adds contiguous runs (see col2im).
        wide = pair(attrs["strides"]) == (1, 1)
        if wide and hw[1] > ow:
            dy = self.emit(f"{dy}/wide", "pad2d", [dy], pads=[0, 0, 0, hw[1] - ow])
        row = hw[1] if wide else ow
        dym = self.per_group(self.emit(f"{dy}/matrix", "reshape", [dy], shape=[n, f, oh * row]), groups, f)
        dcols = self.emit(f"{node}/gemm", "matmul", [wm, dym], transpose_a=True)
        if groups > 1:
            dcols = self.emit(f"{node}/columns", "reshape", [dcols],
                              shape=[n, groups * ws[1] * ws[2] * ws[3], oh * row])
        window = dict(kernel_size=list(ws[2:]), strides=list(pair(attrs["strides"])),
                      dilation=list(pair(attrs["dilation"])), channels=ws[1] * groups, wide=wide)
        if any(pads):
            image = self.emit(f"{node}/col2im", "col2im", [dcols], image_hw=hw, **window)
            self.become(node, "crop2d", [image], pads=list(pads))
        else:
            self.become(node, "col2im", [dcols], image_hw=hw, **window)

    def fused(self, node, ins, attrs):
        """A fused convolution: its GEMM becomes the anchor, on (N, F, OH*OW)."""
        if attrs["anchor"]["op"] != "conv2d":
            return
        conv = attrs["anchor"]["attrs"]
        n_conv = len(ins) - sum(p["extra"] for p in attrs["epilogue"])
        (x, w), extras = ins[:n_conv], ins[n_conv:]
        if conv.get("groups", 1) > 1:
            return self.unfuse(node, [x, w], extras, attrs)
        ws, (n, f, oh, ow) = self.g.nodes[w]["shape"], self.g.nodes[node]["shape"]
        cols = self.columns(node, x, ws, conv)
        wm = self.emit(f"{w}/matrix", "reshape", [w], shape=[f, ws[1] * ws[2] * ws[3]])
        flat = []
        for e in extras:            # full-size extras (a residual) follow the new layout
            full = self.g.nodes[e]["shape"] == (n, f, oh, ow)
            flat.append(self.emit(f"{e}/matrix", "reshape", [e], shape=[n, f, oh * ow]) if full else e)
        matmul = OPS["matmul"]
        anchor = {"op": "matmul", "kernel": matmul.kernel,
                  "attrs": matmul.check_attrs({})[0], "scratch": 0}
        gemm = self.emit(f"{node}/gemm", "fused", [wm, cols, *flat],
                         anchor=anchor, epilogue=attrs["epilogue"])
        self.become(node, "reshape", [gemm], shape=[n, f, oh, ow])

    def unfuse(self, node, conv_ins, extras, attrs):
        """A grouped convolution's GEMM yields (N, G, F/G, L), not the (N, F, L)
        layout the epilogue's broadcasts expect: run the convolution on its own,
        then the epilogue ops one by one (the last keeps the node's name)."""
        y = self.emit(f"{node}/conv", "conv2d", conv_ins, **attrs["anchor"]["attrs"])
        self.conv2d(y, conv_ins, {**OPS["conv2d"].check_attrs({})[0], **attrs["anchor"]["attrs"]})
        parts = attrs["epilogue"]
        for i, part in enumerate(parts):
            args, extras = [y, *extras[:part["extra"]]], extras[part["extra"]:]
            if i == len(parts) - 1:
                self.become(node, part["op"], args, **part["attrs"])
            else:
                y = self.emit(f"{node}/{part['op']}", part["op"], args, **part["attrs"])

    def conv_transpose2d(self, node, ins, attrs):
        """The up-convolution is conv2d's input gradient: lower it as one."""
        x, w = ins
        hw = list(self.g.nodes[node]["shape"][2:])
        conv = {k: attrs[k] for k in ("strides", "padding", "dilation", "groups")}
        self.become(node, "conv2d_grad_input", [x, w], input_hw=hw, **conv)
        self.conv2d_grad_input(node, [x, w], {**conv, "input_hw": hw})

    def _pool(self, node, ins, attrs, fill):
        x_shape = self.g.nodes[ins[0]]["shape"]
        k, s, pads, _ = pool_geometry(x_shape, attrs)
        if any(pads):
            xp = self.padded(node, ins[0], pads, fill)
            self.become(node, self.g.nodes[node]["op"], [xp],
                        pool_size=list(k), strides=list(s), padding="valid",
                        **self._uncounted(x_shape, attrs))

    def _uncounted(self, x_shape, attrs):
        if "count_include_pad" not in attrs:            # max pooling
            return {}
        return {"uncounted": list(uncounted_margins(x_shape, attrs))}

    def max_pool2d(self, node, ins, attrs):
        self._pool(node, ins, attrs, float("-inf"))

    def avg_pool2d(self, node, ins, attrs):
        self._pool(node, ins, attrs, 0.0)

    def _pool_grad(self, node, ins, attrs, fill):
        x_shape = self.g.nodes[node]["shape"]
        k, s, pads, _ = pool_geometry(x_shape, attrs)
        if not any(pads):
            return
        valid = dict(pool_size=list(k), strides=list(s), padding="valid")
        if self.g.nodes[node]["op"] == "max_pool2d_grad":
            dy, x, y = ins
            inputs, extra = [dy, self.padded(node, x, pads, fill), y], {}
        else:
            inputs = ins
            extra = {"input_hw": [x_shape[2] + pads[0] + pads[1], x_shape[3] + pads[2] + pads[3]],
                     **self._uncounted(x_shape, attrs)}
        grad = self.emit(f"{node}/padded", self.g.nodes[node]["op"], inputs, **valid, **extra)
        self.become(node, "crop2d", [grad], pads=list(pads))

    def max_pool2d_grad(self, node, ins, attrs):
        self._pool_grad(node, ins, attrs, float("-inf"))

    def avg_pool2d_grad(self, node, ins, attrs):
        self._pool_grad(node, ins, attrs, 0.0)


def lower(g: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Return a copy of ``g`` in which every op has a runtime kernel (or is a view)."""
    g = copy_graph(g)
    lowering = _Lowering(g)
    for node in list(nx.topological_sort(g)):
        op = g.nodes[node]["op"]
        if op in LOWERED:
            getattr(lowering, op)(node, operands(g, node), op_attrs(g, node))
    return g


LOWERED = ("conv2d", "conv2d_grad_weight", "conv2d_grad_input", "conv_transpose2d", "max_pool2d", "avg_pool2d",
           "max_pool2d_grad", "avg_pool2d_grad", "fused")
