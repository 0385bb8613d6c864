"""Automatic names: a layer gets the first of ``kind``, ``kind_1``, ``kind_2``, ...
that no block in the current block uses; a node the first of ``base``,
``base_1``, ... that no node uses (as ``compiler.ir.unique_name``).

Finding them by scanning every node made building a graph quadratic in its
size, so the names are indexed (see ``NamingMethods``); the names are the same.

>>> from graphnn import Graph
>>> g = Graph(); x = g.input("x", (None, 2))
>>> [g.dense(x, 2).name for _ in range(3)]
['dense/bias_add', 'dense_1/bias_add', 'dense_2/bias_add']
"""
from __future__ import annotations


class NamingMethods:
    """Mixed into Graph (over ``self.nx`` and ``self._groups``, the open blocks).
    Names are free per block: a layer inside "enc" does not shift the count outside.

    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 2))
    >>> with g.block("enc"):
    ...     inner = g.dense(x, 2).name
    >>> inner, g.dense(x, 2).name, g.relu(x).name, g.relu(x).name
    ('enc/dense/bias_add', 'dense/bias_add', 'relu', 'relu_1')
    """

    def _layer_name(self, name, kind):
        """``name``, or the first free ``kind``, ``kind_1``, ... within the current block."""
        if name is not None:
            return name
        prefix = self._groups[-1] + "/" if self._groups else ""
        taken = self._names_under(prefix)
        if kind not in taken:
            return kind
        hints = self._name_state()[2]
        i = hints.get((prefix, kind), 1)   # names below the hint were taken, and stay so
        while f"{kind}_{i}" in taken:
            i += 1
        hints[(prefix, kind)] = i
        return f"{kind}_{i}"

    # Naming a layer needs the names of the blocks directly under the current one.
    # Scanning every node for them made building a graph quadratic in its size, so
    # they are indexed: one scan per block prefix, then kept up to date by
    # ``_note_group`` as nodes are added, and dropped when nodes are removed.
    _name_index = None    # (the nx graph indexed, {prefix: names}, {(prefix, kind): where to look})

    def _name_state(self) -> tuple:
        """The index for the current ``self.nx`` (a new one if the graph was replaced)."""
        if self._name_index is None or self._name_index[0] is not self.nx:
            self._name_index = (self.nx, {}, {})
        return self._name_index

    def _names_under(self, prefix: str) -> set:
        """The first path part of every node group below ``prefix``."""
        index = self._name_state()[1]
        names = index.get(prefix)
        if names is None:
            names = index[prefix] = set()
            for _, d in self.nx.nodes(data=True):
                group = d.get("group", "")
                if group.startswith(prefix) and len(group) > len(prefix):
                    names.add(group[len(prefix):].split("/")[0])
        return names

    def _note_group(self, group: str) -> None:
        """A node of ``group`` was added: its name is taken under each enclosing prefix."""
        if self._name_index is None or self._name_index[0] is not self.nx:
            return
        index, parts = self._name_index[1], group.split("/")
        for k in range(len(parts)):
            names = index.get("".join(p + "/" for p in parts[:k]))
            if names is not None:
                names.add(parts[k])

    def _forget_names(self) -> None:
        """Nodes are being removed: the index is rebuilt when next needed."""
        self._name_index = None

    def _free_node_name(self, base: str) -> str:
        """``base`` if unused, else the first free ``base_1``, ``base_2``, ... (as
        ``unique_name``), starting from where the last search for ``base`` ended:
        a name once taken stays taken unless nodes are removed (which resets it)."""
        if base not in self.nx:
            return base
        hints = self._name_state()[2]
        i = hints.get(("node", base), 1)
        while f"{base}_{i}" in self.nx:
            i += 1
        hints[("node", base)] = i
        return f"{base}_{i}"
