from __future__ import annotations

import numpy as np
import pytest

from stream.core.forecast_error import bias

pytestmark = pytest.mark.unit


def test_over_forecasting_is_a_positive_bias() -> None:
    assert bias([1.0, 2.0], [1.5, 2.5]) == pytest.approx(0.5)
    assert bias([1.0, 2.0], [0.5, 1.0]) == pytest.approx(-0.75)


def test_lists_and_arrays_give_the_same_bias() -> None:
    actual, forecast = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 3.0, 2.0])
    assert bias(actual, forecast) == bias(list(actual), list(forecast)) == pytest.approx(-0.25)


def test_unpaired_or_empty_values_are_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        bias([], [])
    with pytest.raises(ValueError):
        bias([1.0], [1.0, 2.0])
