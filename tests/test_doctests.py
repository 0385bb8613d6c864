"""Run the docstring examples of graphnn.compiler and graphnn.runtime.

pytest's --doctest-modules collects the graphnn/ folder directly, but compiler/ and
runtime/ are installed as graphnn.compiler and graphnn.runtime (a package mapping that
pytest's path-based collection cannot see), so their modules are imported by their
installed names here.
"""
import doctest
import importlib
import pkgutil

import graphnn.compiler
import graphnn.runtime
import pytest


def _modules():
    for package in (graphnn.compiler, graphnn.runtime):
        yield package.__name__
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
