"""The compiler's faster helpers give exactly what the networkx functions they
replace give."""
from __future__ import annotations

import networkx as nx
import pytest
from graphnn.compiler.ir import copy_graph, topological_order
from hypothesis import given, settings
from hypothesis import strategies as st


def _random_multidag(edges, nodes):
    g = nx.MultiDiGraph()
    g.add_nodes_from(f"n{i}" for i in nodes)              # insertion order matters to both
    for a, b in edges:
        if a != b:
            lo, hi = sorted((a, b))
            g.add_edge(f"n{lo}", f"n{hi}", port=len(g.edges))
    return g


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 25), st.integers(0, 25)), max_size=80),
       st.permutations(range(26)))
def test_topological_order_is_networkx_topological_sort(edges, nodes):
    g = _random_multidag(edges, nodes)
    assert topological_order(g) == list(nx.topological_sort(g))


def test_topological_order_refuses_a_cycle():
    with pytest.raises(nx.NetworkXUnfeasible):
        topological_order(nx.MultiDiGraph([("a", "b"), ("b", "a")]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 15)), max_size=40),
       st.sets(st.integers(0, 15)))
def test_copy_graph_of_kept_nodes_is_the_subgraph_copy(edges, kept):
    g = _random_multidag(edges, range(16))
    keep = {f"n{i}" for i in kept}
    ours, theirs = copy_graph(g, keep), g.subgraph(keep).copy()
    assert set(ours.nodes) == set(theirs.nodes)
    assert sorted(ours.edges(keys=True, data="port")) == sorted(theirs.edges(keys=True, data="port"))
    if keep:                                    # attribute dicts are new, not shared
        ours.nodes[next(iter(keep))]["x"] = 1
    assert all("x" not in d for _, d in g.nodes(data=True))
