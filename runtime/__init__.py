"""heed's on-device runtime: onnxruntime and numpy only, never torch.

`from runtime import Pipeline` is the public entry point (INTERFACES.md section 5); it is loaded
lazily so that `heed --help` and the corpus commands do not pay for onnxruntime.
"""
from __future__ import annotations

__all__ = ["Pipeline", "Stream", "BundleError"]


def __getattr__(name: str):
    if name in __all__:
        from runtime import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
