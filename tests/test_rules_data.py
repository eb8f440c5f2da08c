"""The data-area rule (shuffled-data) on hand-built Measurements: no TensorFlow."""

from __future__ import annotations

import pytest

from losscheck.measurements import Measurements
from losscheck.measurements.data import DataMeasurements
from losscheck.rules import judge_areas

CASES = {
    "no data area": (Measurements("compare"), []),
    "arrays": (Measurements("compare", data=DataMeasurements("d.npz", 100, 32)), []),
    "pipeline in a fixed order": (Measurements("compare", data=DataMeasurements("<tf.data.Dataset>", 100, 16,
                                                                                pipeline=True)), []),
    "shuffling pipeline": (Measurements("callback", data=DataMeasurements("<tf.data.Dataset>", 100, 16,
                                                                          pipeline=True, shuffled=True)),
                           ["shuffled-data"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_data_rules(name):
    m, codes = CASES[name]
    found = judge_areas(m, ("data",))
    assert [f.code for f in found] == codes
    assert all("<tf.data.Dataset> gives its samples in a different order" in f.message for f in found)
