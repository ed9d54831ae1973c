"""The presence-only learner of ``evaluate``: positives against background, never negatives."""

from __future__ import annotations

import numpy as np

from safeground.risk import RiskTable, evaluate
from safeground.risk.baselines import FoldData, maxent_presence_only


def test_maxent_never_sees_a_negative(cut_table: RiskTable) -> None:
    assert cut_table.groups is not None and cut_table.label is not None
    train = cut_table.groups != cut_table.groups[0]
    fold = FoldData(xy=None, groups=cut_table.groups, seed=0)
    scores = maxent_presence_only(cut_table, train, fold)
    # Negatives turned unlabelled: the same background, the same presences, the same scores.
    blind = RiskTable(
        **{
            **cut_table.__dict__,
            "label": np.where(cut_table.label == 0, -1, cut_table.label).astype(np.int8),
        }
    )
    assert np.array_equal(maxent_presence_only(blind, train, fold), scores)
    # One positive fewer: different presences, different scores (the check above can fail).
    fewer = cut_table.label.copy()
    fewer[np.flatnonzero(train & (fewer == 1))[0]] = 0
    changed = RiskTable(**{**cut_table.__dict__, "label": fewer})
    assert not np.array_equal(maxent_presence_only(changed, train, fold), scores)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_evaluate_runs_maxent_by_name(cut_table: RiskTable, fast_config) -> None:
    ev = evaluate(cut_table, "group", config=fast_config, models=["maxent", "kde"])
    assert ev.models == ["maxent", "kde"]
    assert 0.0 <= ev.overall["maxent"]["roc_auc"] <= 1.0
