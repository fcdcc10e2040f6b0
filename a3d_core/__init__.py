"""a3d core library: the A3D network (Li et al., ECCV 2022), its data, training and evaluation.

Data flows one way: ``data.formats`` -> canonical records -> datasets -> ``model`` ->
predictions -> ``eval`` / ``io``. Nothing here imports ``a3d_cli``.
"""

__version__ = "0.1.0"
