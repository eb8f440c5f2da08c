"""Why a user's natural numpy computation (a plain global mean of the element-wise formula on predict()
output) differs from Keras's number: sample-weight normalization, masks, probability clipping vs the
logits shortcut, mixed precision (issue 3).

Hook called by compare: semantic_findings(ctx) -> list[Finding] (ctx: losscheck.checks.CheckContext).
"""

from __future__ import annotations

from losscheck.findings import Finding


def semantic_findings(ctx) -> list[Finding]:
    return []
