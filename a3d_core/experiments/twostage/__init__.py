"""Which stage 2 the two-stage network should have: every candidate kind trained as ``a3d demo``
trains it (pretrained on the built-in views, then fine-tuned with stage 1 on the scenes), with
several seeds, chosen on val scenes and scored once on test scenes of unseen objects
(:mod:`a3d_core.experiments.twostage.study`; ``benchmarks/bm_twostage.py``; docs/twostage.md)."""
