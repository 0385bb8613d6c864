"""pytest's collection: graphnn/onnx's docstring examples need the optional onnx
extra; without it they are not collected (tests/onnx skip with a reason)."""
import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("onnx") else ["graphnn/onnx/*.py"]
