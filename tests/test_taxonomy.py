"""The one loss-kind table and the one family tuple agree with what reads them: the reference's
formulas, the figure order, and the per-family texts of the rules and renderers (no TensorFlow)."""

from __future__ import annotations

from losscheck.core import taxonomy


def test_every_kind_the_reference_computes_is_in_the_table_and_no_other():
    from losscheck.reference.formulas import FORMULAS

    assert set(taxonomy.LOSS_KINDS) == set(FORMULAS)


def test_the_trait_sets_are_read_from_the_table():
    from losscheck.probes.lossfn.outputs import CROSSENTROPY_KINDS
    from losscheck.reference.formulas import CLIPPING_KINDS
    from losscheck.reference.specs import ELEMENTWISE_LAST_AXIS_MEAN, LOGITS_SHORTCUT_KINDS

    assert CROSSENTROPY_KINDS == CLIPPING_KINDS == taxonomy.kinds_with("crossentropy")
    assert ELEMENTWISE_LAST_AXIS_MEAN == taxonomy.kinds_with("last_axis_mean")
    assert LOGITS_SHORTCUT_KINDS == taxonomy.kinds_with("sigmoid_logits") | taxonomy.kinds_with("softmax_logits")
    assert taxonomy.LAST_AXIS_MEAN_KINDS <= taxonomy.SAME_SHAPE_KINDS
    assert not taxonomy.SPARSE_KINDS & taxonomy.SAME_SHAPE_KINDS  # class indices are never shaped like the output
    assert taxonomy.ONEHOT_KINDS <= taxonomy.SAMPLEWISE_KINDS


def test_one_family_tuple():
    from losscheck.core.figures import FIGURE_ORDER
    from losscheck.decomposition import FAMILY_FIGURES
    from losscheck.report.lossfn import FAMILY_TEXT as SECTION_TEXT
    from losscheck.rules.gaps import FAMILY_LABEL, FAMILY_TEXT

    assert set(taxonomy.STOCHASTIC_FAMILIES) <= set(taxonomy.FAMILIES)
    assert set(taxonomy.BUILTIN_FAMILIES) == set(taxonomy.FAMILIES) - {"custom"}
    assert [f for f in taxonomy.LISTED_FAMILIES if f != taxonomy.FROZEN_BATCHNORM] == list(taxonomy.FAMILIES)
    assert tuple(FAMILY_TEXT) == tuple(FAMILY_LABEL) == taxonomy.FAMILIES
    assert [figure for _, figure in FAMILY_FIGURES] == [taxonomy.family_figure(f) for f in taxonomy.FAMILIES]
    assert set(SECTION_TEXT) == set(taxonomy.LISTED_FAMILIES)
    assert all(taxonomy.family_figure(f) in FIGURE_ORDER for f in taxonomy.FAMILIES)


def test_rate_of_reads_plain_numbers_only():
    """A rate is a plain number; a sub-layer held under the same name (self.dropout = Dropout(0.1)),
    None, a flag or a missing attribute reads as 0."""
    import numpy as np

    class Holder:
        dropout = object()  # a sub-layer
        rate = np.float32(0.25)
        recurrent_dropout = None
        flag = True

    assert taxonomy.rate_of(Holder(), "rate") == 0.25
    assert taxonomy.rate_of(Holder(), "dropout") == 0.0
    assert taxonomy.rate_of(Holder(), "recurrent_dropout") == 0.0
    assert taxonomy.rate_of(Holder(), "flag") == 0.0
    assert taxonomy.rate_of(Holder(), "missing") == 0.0
