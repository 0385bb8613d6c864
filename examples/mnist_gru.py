"""MNIST read row by row by a GRU: 28 rows of 28 pixels, top to bottom.

The same network as mnist_lstm.py with the LSTM cell swapped for a GRU (fewer
gates, fewer weights: 3 x 96 instead of 4 x 96 per input).

    python examples/mnist_gru.py [path/to/mnist]
"""
from __future__ import annotations

import sys

from mnist_lstm import DEFAULT, run

if __name__ == "__main__":
    result = run(sys.argv[1] if len(sys.argv) > 1 else DEFAULT, cell="gru")
    print(f"train accuracy {result['train_accuracy']:.4f}, test accuracy {result['test_accuracy']:.4f} "
          f"({result['seconds']:.0f} s)")
