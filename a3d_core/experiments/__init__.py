"""Experiments that train and compare several models: they sit above the pipelines, beside them,
and nothing in the library imports them."""
