import json
import math

import pandas as pd
import pytest

from augment.errors import AugmentError
from augment.evaluation import report


def test_tables_and_json_safety():
    result = {"overall": {c: 0.5 for c in report.SUMMARY_COLUMNS if c != "cas"},
              "per_class": {c: [0.1] * 9 + [math.nan] for c in report.PER_CLASS_COLUMNS if c != "cas"}}
    summary = report.summary_table({"a": result})
    assert list(summary.columns) == [c for c in report.SUMMARY_COLUMNS if c != "cas"]
    table = report.markdown_table(report.per_class_table(result), "class")
    assert table.splitlines()[0].startswith("| class | agreement |") and "| nan |" in table
    assert report._json_safe({"x": [math.nan, math.inf, 1.0]}) == {"x": [None, None, 1.0]}


def test_per_class_rows_carry_the_class_names_where_the_data_has_them():
    result = {"per_class": {"agreement": [0.5, 0.25]}}
    named = report.markdown_table(report.per_class_table(result, ["cat", "dog"]), "class")
    assert "| 0 cat | 0.5000 |" in named and "| 1 dog | 0.2500 |" in named
    numbered = report.markdown_table(report.per_class_table(result, ["0", "1"]), "class")  # IDX: names add nothing
    assert "| 0 | 0.5000 |" in numbered and "| 1 | 0.2500 |" in numbered
    assert report.class_labels(None, 3) == [0, 1, 2]
    rows = pd.DataFrame({"class": [0, 1], "class_name": ["cat", "dog"]})
    assert list(report.labelled_classes(rows)) == ["0 cat", "1 dog"]
    assert list(report.labelled_classes(rows.drop(columns="class_name"))) == [0, 1]


def test_summary_keeps_cas_when_any_set_has_it_and_other_columns_always():
    without = {"overall": {c: 0.5 for c in report.SUMMARY_COLUMNS if c not in ("cas", "density")}}
    with_cas = {"overall": {c: 0.5 for c in report.SUMMARY_COLUMNS if c != "density"}}
    # a metric missing from every set is still a column (NaN): only "cas" is optional
    assert "density" in report.summary_table({"a": without}).columns
    assert "cas" not in report.summary_table({"a": without}).columns
    both = report.summary_table({"a": without, "b": with_cas})
    assert math.isnan(both.loc["a", "cas"]) and both.loc["b", "cas"] == 0.5


def test_out_dir_must_be_new_empty_or_an_old_report(tmp_path):
    assert report.check_out_dir(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "file").write_text("x")
    with pytest.raises(AugmentError, match="not a directory"):
        report.check_out_dir(tmp_path / "file")
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(AugmentError, match="not empty"):
        report.check_out_dir(other)
    with pytest.raises(AugmentError, match="not an evaluation report"):
        report.check_out_dir(other, overwrite=True)
    (other / "results.json").write_text(json.dumps({}))
    assert report.check_out_dir(other, overwrite=True) == other
