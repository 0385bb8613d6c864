"""Automatic layer and node names follow one rule, kept while the builder
indexes the names instead of scanning every node for each new layer: a layer
gets the first of ``kind``, ``kind_1``, ``kind_2``, ... that no block in the
current block uses, and a node the first of ``base``, ``base_1``, ... that no
node uses. The reference below applies the rule by scanning the whole graph."""
from __future__ import annotations

import networkx as nx
import pytest
from graphnn.compiler.ir import unique_name

from graphnn import Graph, ShapeError


def first_free(kind: str, taken: set) -> str:
    if kind not in taken:
        return kind
    i = 1
    while f"{kind}_{i}" in taken:
        i += 1
    return f"{kind}_{i}"


def expected_layer_name(g: Graph, kind: str) -> str:
    prefix = g._groups[-1] + "/" if g._groups else ""
    taken = {d["group"][len(prefix):].split("/")[0] for _, d in g.nx.nodes(data=True)
             if d.get("group", "").startswith(prefix) and len(d.get("group", "")) > len(prefix)}
    return first_free(kind, taken)


def test_names_follow_the_rule_through_blocks_explicit_names_and_failures():
    g = Graph()
    h = g.input("x", (None, 4))
    seen = []
    for step in range(40):
        kind = ("dense", "dropout", "dense", "batch_norm")[step % 4]
        if step % 7 == 3:                      # an explicit name that an automatic one would take
            h = g.dense(h, 4, name=f"dense_{step + 1}")
            continue
        if step % 9 == 5:                      # a layer that fails: its nodes go, its name is free
            want = expected_layer_name(g, "dense")
            with pytest.raises(ShapeError):
                g.dense(g.input(f"img{step}", (None, 2, 3)), 4)
            assert want not in {d.get("group") for _, d in g.nx.nodes(data=True)}
        if step % 11 == 6:                     # layers inside a block of the user's
            with g.block(f"stage{step}"):
                for _ in range(3):
                    want = expected_layer_name(g, "dense")
                    h = g.dense(h, 4)
                    assert h.name == f"stage{step}/{want}/bias_add"
            continue
        want = expected_layer_name(g, kind)
        h = {"dense": lambda t: g.dense(t, 4), "dropout": lambda t: g.dropout(t, 0.1),
             "batch_norm": g.batch_norm}[kind](h)
        assert g.nx.nodes[h.name]["group"] == want
        seen.append(want)
    assert len(set(seen)) == len(seen) and "dense_9" in seen


def test_anonymous_ops_take_the_first_free_suffix_also_after_a_failure():
    g = Graph()
    x = g.input("x", (None, 3))
    other = g.input("y", (None, 5))
    h = x
    for i in range(30):
        want = unique_name(g.nx, "tanh")
        h = g.op("tanh", [h])
        assert h.name == want
        if i % 10 == 4:                        # a failed op frees the name it took
            want = unique_name(g.nx, "add")
            with pytest.raises(ShapeError):
                g.op("add", [h, other])
            assert want not in g.nx and g.op("add", [h, h]).name == want


def test_a_replaced_or_loaded_graph_is_indexed_afresh():
    g = Graph()
    x = g.input("x", (None, 3))
    g.dense(x, 2)
    g.dense(x, 2)
    h = nx.MultiDiGraph(g.nx)
    g2 = Graph.from_networkx(h)
    assert g2.dense(g2["x"], 2).name == "dense_2/bias_add"
    g.nx = nx.MultiDiGraph(g.nx)               # the builder's graph swapped underneath
    g.nx.remove_nodes_from([n for n in list(g.nx) if n.startswith("dense_1/")])
    assert g.dense(x, 2).name == "dense_1/bias_add"


def test_names_freed_by_a_failure_inside_a_block_are_given_again():
    g = Graph()
    h = g.input("x", (None, 4))
    bad = g.input("bad", (None, 5))
    h = g.dense(h, 4)
    with pytest.raises(ShapeError), g.block("dense_1"):     # the block fails: its nodes go
        g.op("tanh", [h])
        g.op("add", [h, bad])
    assert g.dense(h, 4).name == "dense_1/bias_add"
    with g.block("dense_2"), pytest.raises(ShapeError):    # an op fails, caught in its block
        g.op("add", [h, bad])
    assert g.dense(h, 4).name == "dense_2/bias_add"
