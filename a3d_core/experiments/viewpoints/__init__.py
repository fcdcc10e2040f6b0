"""The viewpoint benchmark (``benchmarks/bm_viewpoints.py``): does the 3D prior help at new
viewpoints? See docs/viewpoints.md."""
