"""Vector helpers shared by embed, topics and report (no heavy imports)."""
from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero): the project's one normalisation; topics and
    report use it too. Written out rather than sklearn's ``normalize``, whose float32 results differ
    in the last bit, which moves UMAP/HDBSCAN topics on the sample (21 -> 20 topics)."""
    x = np.atleast_2d(np.asarray(x, dtype=dtype))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(dtype, copy=False)
