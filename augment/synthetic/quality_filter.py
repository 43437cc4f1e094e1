"""Transitional alias: the quality filter lives in ``augment.synthetic.filtering``. Delete this
file once ``augment/__init__.py`` and ``augment/evaluation/classifier_files.py`` import
``QualityFilter`` from there."""

from augment.synthetic.filtering import QualityFilter  # noqa: F401
