"""graphnn's runtime: NumPy only. A Program (plain data) and the Executor that runs it.

>>> from graphnn.runtime import Executor, Program
"""
from .executor import Executor
from .program import Buffer, Instruction, MemoryReport, Program

__all__ = ["Buffer", "Executor", "Instruction", "MemoryReport", "Program"]
