import pytest

from augment.downstream.methods import METHODS, Method, methods_of


def test_each_row_is_a_method_and_each_grid_kind_has_its_methods_in_table_order():
    assert all(name == m.name for name, m in METHODS.items())
    assert len({m.label for m in METHODS.values()}) == len(METHODS)
    assert methods_of("balanced") == ("none", "classical", "synthetic", "classical+synthetic")
    assert methods_of("longtail") == ("erm", "balanced", "logit-adjusted", "classical", "classical+balanced",
                                      "classical+logit-adjusted", "top-up", "classical+top-up",
                                      "classical+synthetic+logit-adjusted")
    assert [m for m in METHODS if METHODS[m].uses_synthetic] == [
        "synthetic", "classical+synthetic", "top-up", "classical+top-up", "classical+synthetic+logit-adjusted"]


def test_a_row_says_how_its_classifier_trains():
    la = METHODS["classical+synthetic+logit-adjusted"]
    assert (la.sampling, la.logit_adjusted, la.classical, la.synthetic) == ("uniform", True, True, "ratio")
    assert METHODS["classical+balanced"].sampling == "balanced" and METHODS["top-up"].synthetic == "top-up"
    assert not METHODS["erm"].classical and not METHODS["none"].uses_synthetic


@pytest.mark.parametrize("bad", [{"sampling": "weighted"}, {"synthetic": "mixup"}, {"grids": ("imagenet",)}])
def test_a_bad_row_is_refused(bad):
    with pytest.raises(ValueError):
        Method(**{"name": "x", "label": "x", "grids": ("longtail",), **bad})
