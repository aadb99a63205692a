"""Validation-set statistics that justify a recipe: ``augmine inspect``.

A small package in four parts:

- :mod:`.measure`: pure per-image / per-box measurements (:func:`image_stats`,
  :func:`jpeg_quality`, :func:`box_stats`) and :func:`measure_paths` over many files;
- :mod:`.summary`: percentiles, per-class rows, statistics a few classes hold
  (:func:`concentration`), outliers, split comparison, and :func:`inspect_dataset`, which
  measures a dataset split and builds the report dict;
- :mod:`.suggest`: :func:`suggest_recipe`, a recipe whose ``why:`` lines quote the report
  (with ``classes:`` overrides when a few classes hold the grayscale images);
- :mod:`.render`: :func:`format_report` (the CLI's tables), :func:`plot_histograms`,
  :func:`write_report` (``inspection.json``, ``images.csv``, ``histograms.png``) and
  :func:`check_writable` (output places, checked before measuring).
"""

from __future__ import annotations

from augmine.augment.inspection.measure import (COLUMNS, PARALLEL_MIN_IMAGES, box_stats, image_stats, jpeg_quality,
                      measure_file, measure_paths)
from augmine.augment.inspection.render import check_writable, format_report, plot_histograms, write_report
from augmine.augment.inspection.suggest import suggest_recipe
from augmine.augment.inspection.summary import (STATS, class_outliers, compare_splits, concentrated_classes,
                      concentration, image_outliers, inspect_dataset, per_class, split_summary,
                      summarize)

__all__ = [
    "COLUMNS", "PARALLEL_MIN_IMAGES", "STATS", "box_stats", "check_writable", "class_outliers",
    "compare_splits", "concentrated_classes", "concentration", "format_report",
    "image_outliers", "image_stats", "inspect_dataset", "jpeg_quality", "measure_file",
    "measure_paths", "per_class", "plot_histograms", "split_summary", "suggest_recipe",
    "summarize", "write_report",
]
