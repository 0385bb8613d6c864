"""Converters for ONNX LSTM and GRU, with ONNX's gate layouts (LSTM [input,
output, forget, cell]; GRU [update, reset, hidden]) and both GRU forms
(``linear_before_reset`` 0 and 1).

A forward LSTM from zero states, with a bias and without peepholes, whose final
cell state Y_c nobody reads, becomes graphnn's own LSTM: its weights reordered
into graphnn's gate order (PyTorch's [input, forget, cell, output]) by slices
and a concat, ``lstm_weights`` and one ``lstm_scan`` (compiler/ops/lstm_scan.py).
Any other LSTM, and every GRU, is unrolled into ordinary graphnn ops: each
direction projects every step's input at once ((N, T, F) @ W^T), then runs the
recurrent product step by step. Weights may be initializers or graph inputs (the
conformance tests feed them).
"""
from __future__ import annotations

from .converters import (
    Unsupported,
    const,
    converter,
    dtype_of,
    need_floats,
    out,
    reshape,
    shape_of,
)


def _check(a, ins, node, defaults):
    acts = [x.decode() if isinstance(x, bytes) else x for x in a.get("activations", [])]
    if acts and acts != defaults * (len(acts) // len(defaults)):
        raise Unsupported(f"activations {acts}; supported: the defaults {defaults}")
    if "clip" in a:
        raise Unsupported("clip; graphnn's cells do not clip")
    if a.get("input_forget", 0):
        raise Unsupported("input_forget=1 (coupled gates)")
    lens = ins[4] if len(ins) > 4 else None
    if lens is not None:
        steps = shape_of(ins[0])[0 if a.get("layout", 0) == 0 else 1]
        if not (const(lens, "sequence_lens") == steps).all():
            raise Unsupported("sequence_lens shorter than the sequence (padded batches)")
    need_floats(*(v for v in ins if v is not None and not dtype_of(v).startswith("int")),
                what=node.op_type)


class _Cell:
    """Shared plumbing: per-direction weights, steps, stacking the outputs."""

    def __init__(self, ctx, node, ins, a, gates):
        self.ctx, self.name = ctx, out(node)
        self.x, self.w, self.r = ins[:3]
        self.b = ins[3] if len(ins) > 3 else None
        self.layout = int(a.get("layout", 0))
        self.hidden = int(a["hidden_size"]) if "hidden_size" in a else shape_of(self.r)[-1]
        self.gates = gates
        direction = a.get("direction", b"forward")
        self.direction = direction.decode() if isinstance(direction, bytes) else direction
        self.dirs = 2 if self.direction == "bidirectional" else 1
        s = shape_of(self.x)
        self.steps, self.batch = (s[0], s[1]) if self.layout == 0 else (s[1], s[0])

    def op(self, op, ins, name, **attrs):
        return self.ctx.op(op, ins, f"{self.name}/{name}", **attrs)

    def part(self, v, d, name, rows):
        """Direction d of a stacked (D, ...) weight, as a (rows, ...) matrix."""
        if v is None:
            return None
        piece = self.op("slice", [v], f"{name}{d}", axis=0, start=d, stop=d + 1) if self.dirs > 1 else v
        return reshape(self.ctx, piece, (rows, *shape_of(v)[2:]), f"{self.name}/{name}{d}_2d")

    def cols(self, v, d, name, k, n=1):
        """Gate block k (n gates wide) of the last axis of v."""
        h = self.hidden
        return self.op("slice", [v], f"{name}{d}", axis=len(shape_of(v)) - 1, start=k * h, stop=(k + n) * h)

    def projected(self, d):
        """Every step's input times W^T plus the input bias: (T or N, N or T, G*H)."""
        g, h = self.gates, self.hidden
        w = self.part(self.w, d, "W", g * h)
        wt = self.op("transpose", [w], f"W{d}_T", perm=[1, 0])
        if self.layout == 0 and d == 0:          # (T, N, F) -> (N, T, F), once
            self.xs = self.op("transpose", [self.x], "batch_first", perm=[1, 0, 2])
        xs = self.x if self.layout == 1 else self.xs
        return self.op("matmul", [xs, wt], f"input_proj{d}")

    def step(self, proj, t, d):
        x = self.op("slice", [proj], f"x{d}_{t}", axis=1, start=t, stop=t + 1)
        return reshape(self.ctx, x, (self.batch, self.gates * self.hidden), f"{self.name}/x{d}_{t}_row")

    def initial(self, v, d, name):
        if v is None:
            return None
        return self.part(v, d, name, self.batch)

    def order(self, d):
        reverse = self.direction == "reverse" or d == 1
        return list(range(self.steps - 1, -1, -1)) if reverse else list(range(self.steps))

    def outputs(self, node, per_dir, finals, extra_finals=None):
        """Y, Y_h (and Y_c) in ONNX's layout, for the outputs the node names."""
        n, h = self.batch, self.hidden
        results = []
        wanted = list(node.output)
        if wanted and wanted[0]:
            rows = []
            for t in range(self.steps):
                each = [reshape(self.ctx, per_dir[d][t], (1, 1, n, h) if self.layout == 0 else (n, 1, 1, h),
                                f"{self.name}/y{d}_{t}") for d in range(self.dirs)]
                rows.append(self.op("concat", each, f"y_{t}", axis=1 if self.layout == 0 else 2)
                            if self.dirs > 1 else each[0])
            axis = 0 if self.layout == 0 else 1
            results.append(self.ctx.op("concat", rows, wanted[0], axis=axis) if len(rows) > 1
                           else self.ctx.op("linear", rows, wanted[0]))
        else:
            results.append(None)
        for k, last in ((1, finals), (2, extra_finals)):
            if last is None or len(wanted) <= k or not wanted[k]:
                continue
            each = [reshape(self.ctx, last[d], (1, n, h) if self.layout == 0 else (n, 1, h),
                            f"{self.name}/final{k}_{d}") for d in range(self.dirs)]
            axis = 0 if self.layout == 0 else 1
            results.append(self.ctx.op("concat", each, wanted[k], axis=axis) if self.dirs > 1
                           else self.ctx.op("linear", each, wanted[k]))
        return results


def _scans(cell, node, ins) -> bool:
    """Whether an ONNX LSTM is one graphnn LSTM: forward, zero initial states, a
    bias, no peepholes, no Y_c read."""
    wanted = list(node.output)
    return (cell.direction == "forward" and ins[3] is not None and all(v is None for v in ins[5:8])
            and not (len(wanted) > 2 and wanted[2]))


def _scan_lstm(cell, node):
    """lstm_weights and lstm_scan over the batch-first sequence; Y and Y_h read
    from the scan in ONNX's layout."""
    h, steps, ctx = cell.hidden, cell.steps, cell.ctx

    def in_gate_order(v, name):                # ONNX's blocks i, o, f, c -> i, f, c, o (axis 0)
        return cell.op("concat", [cell.op("slice", [v], f"{name}{k}", axis=0, start=k * h, stop=(k + 1) * h)
                                  for k in (0, 2, 3, 1)], f"{name}_gates", axis=0)
    w = cell.op("transpose", [in_gate_order(cell.part(cell.w, 0, "W", 4 * h), "W")], "W_T", perm=[1, 0])
    b = cell.part(cell.b, 0, "B", 8 * h)
    b = in_gate_order(cell.op("add", [cell.cols(b, 0, "Wb", 0, 4), cell.cols(b, 0, "Rb", 4, 4)], "bias0"), "b")
    weights = [w, b]
    if steps > 1:           # U multiplies nothing at one step
        weights.append(cell.op("transpose", [in_gate_order(cell.part(cell.r, 0, "R", 4 * h), "R")], "R_T",
                               perm=[1, 0]))
    xs = cell.x if cell.layout == 1 else cell.op("transpose", [cell.x], "batch_first", perm=[1, 0, 2])
    states = cell.op("lstm_scan", [cell.op("lstm_weights", weights, "weights"), xs], "scan")
    wanted, results, n = list(node.output), [], cell.batch
    if wanted and wanted[0]:
        y = cell.op("lstm_sequence", [states], "sequence", steps=steps, units=h)          # (N, T, H)
        if cell.layout == 0:
            y = cell.op("transpose", [y], "time_first", perm=[1, 0, 2])
        results.append(reshape(ctx, y, (steps, 1, n, h) if cell.layout == 0 else (n, steps, 1, h), wanted[0]))
    else:
        results.append(None)
    if len(wanted) > 1 and wanted[1]:
        last = cell.op("lstm_last", [states], "last", steps=steps, units=h)
        results.append(reshape(ctx, last, (1, n, h) if cell.layout == 0 else (n, 1, h), wanted[1]))
    return results


@converter("LSTM")
def _lstm(ctx, node, ins, a):
    _check(a, ins, node, ["Sigmoid", "Tanh", "Tanh"])
    ins = list(ins) + [None] * (8 - len(ins))
    cell = _Cell(ctx, node, ins, a, 4)
    if _scans(cell, node, ins):
        return _scan_lstm(cell, node)
    h_size = cell.hidden
    per_dir, finals_h, finals_c = [], [], []
    for d in range(cell.dirs):
        proj = cell.projected(d)
        if cell.b is not None:
            b = cell.part(cell.b, d, "B", 8 * h_size)
            bias = cell.op("add", [cell.cols(b, d, "Wb", 0, 4), cell.cols(b, d, "Rb", 4, 4)], f"bias{d}")
            proj = cell.op("bias_add", [proj, bias], f"input_gates{d}", axis=-1)
        rt = cell.op("transpose", [cell.part(cell.r, d, "R", 4 * h_size)], f"R{d}_T", perm=[1, 0])
        peep = cell.part(ins[7], d, "P", 3 * h_size) if ins[7] is not None else None
        h, c = cell.initial(ins[5], d, "h0_"), cell.initial(ins[6], d, "c0_")
        seq = {}
        for t in cell.order(d):
            z = cell.step(proj, t, d)
            if h is not None:
                z = cell.op("add", [z, cell.op("matmul", [h, rt], f"recur{d}_{t}")], f"z{d}_{t}")
            gate = {name: cell.cols(z, d, f"{name}{t}_", k) for k, name in enumerate("iofc")}
            if peep is not None and c is not None:
                for k, name in ((0, "i"), (2, "f")):
                    p = cell.cols(peep, d, f"p{name}{t}_", k)
                    gate[name] = cell.op("add", [gate[name], cell.op("multiply", [p, c], f"pc{name}{d}_{t}")],
                                         f"{name}_peep{d}_{t}")
            i = cell.op("sigmoid", [gate["i"]], f"i{d}_{t}")
            g = cell.op("tanh", [gate["c"]], f"g{d}_{t}")
            new = cell.op("multiply", [i, g], f"ig{d}_{t}")
            if c is None:
                c = new
            else:
                f = cell.op("sigmoid", [gate["f"]], f"f{d}_{t}")
                c = cell.op("add", [cell.op("multiply", [f, c], f"fc{d}_{t}"), new], f"c{d}_{t}")
            if peep is not None:
                p = cell.cols(peep, d, f"po{t}_", 1)
                gate["o"] = cell.op("add", [gate["o"], cell.op("multiply", [p, c], f"pco{d}_{t}")],
                                    f"o_peep{d}_{t}")
            o = cell.op("sigmoid", [gate["o"]], f"o{d}_{t}")
            h = cell.op("multiply", [o, cell.op("tanh", [c], f"tanh_c{d}_{t}")], f"h{d}_{t}")
            seq[t] = h
        per_dir.append(seq)
        finals_h.append(h)
        finals_c.append(c)
    return cell.outputs(node, per_dir, finals_h, finals_c)


@converter("GRU")
def _gru(ctx, node, ins, a):
    _check(a, ins, node, ["Sigmoid", "Tanh"])
    ins = list(ins) + [None] * (6 - len(ins))
    cell = _Cell(ctx, node, ins, a, 3)
    hs = cell.hidden
    before_reset = bool(a.get("linear_before_reset", 0))
    per_dir, finals = [], []
    for d in range(cell.dirs):
        proj = cell.projected(d)
        rb_h = None
        if cell.b is not None:
            b = cell.part(cell.b, d, "B", 6 * hs)
            zr = cell.op("add", [cell.cols(b, d, "Wb_zr", 0, 2), cell.cols(b, d, "Rb_zr", 3, 2)], f"bias_zr{d}")
            wb_h, rb_h = cell.cols(b, d, "Wb_h", 2), cell.cols(b, d, "Rb_h", 5)
            # the hidden gate's recurrent bias sits inside r * (...) only when linear_before_reset
            hb = wb_h if before_reset else cell.op("add", [wb_h, rb_h], f"bias_h{d}")
            proj = cell.op("bias_add", [proj, cell.op("concat", [zr, hb], f"bias{d}", axis=0)],
                           f"input_gates{d}", axis=-1)
        r_t = cell.op("transpose", [cell.part(cell.r, d, "R", 3 * hs)], f"R{d}_T", perm=[1, 0])
        r_zr_t, r_h_t = cell.cols(r_t, d, "R_zr_T", 0, 2), cell.cols(r_t, d, "R_h_T", 2)
        h = cell.initial(ins[5], d, "h0_")
        seq = {}
        for t in cell.order(d):
            x = cell.step(proj, t, d)
            zr_in = cell.cols(x, d, f"xzr{t}_", 0, 2)
            if h is not None:
                zr_in = cell.op("add", [zr_in, cell.op("matmul", [h, r_zr_t], f"recur_zr{d}_{t}")], f"zr{d}_{t}")
            z = cell.op("sigmoid", [cell.cols(zr_in, d, f"z_in{t}_", 0)], f"z{d}_{t}")
            r = cell.op("sigmoid", [cell.cols(zr_in, d, f"r_in{t}_", 1)], f"r{d}_{t}")
            n_in = cell.cols(x, d, f"xh{t}_", 2)
            if before_reset:
                rec = None
                if h is not None:
                    rec = cell.op("matmul", [h, r_h_t], f"recur_h{d}_{t}")
                    if rb_h is not None:
                        rec = cell.op("bias_add", [rec, rb_h], f"recur_hb{d}_{t}", axis=-1)
                elif rb_h is not None:
                    rec = rb_h
                if rec is not None:
                    n_in = cell.op("add", [n_in, cell.op("multiply", [r, rec], f"rh{d}_{t}")], f"n_in{d}_{t}")
            elif h is not None:
                rh = cell.op("multiply", [r, h], f"rh{d}_{t}")
                n_in = cell.op("add", [n_in, cell.op("matmul", [rh, r_h_t], f"recur_h{d}_{t}")], f"n_in{d}_{t}")
            n = cell.op("tanh", [n_in], f"n{d}_{t}")
            if h is None:             # h' = n + z (0 - n)
                h = cell.op("subtract", [n, cell.op("multiply", [z, n], f"zn{d}_{t}")], f"h{d}_{t}")
            else:
                diff = cell.op("subtract", [h, n], f"h_minus_n{d}_{t}")
                h = cell.op("add", [n, cell.op("multiply", [z, diff], f"zd{d}_{t}")], f"h{d}_{t}")
            seq[t] = h
        per_dir.append(seq)
        finals.append(h)
    return cell.outputs(node, per_dir, finals)
