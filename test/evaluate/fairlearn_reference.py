"""Reference fairness metrics for the evaluation tests: Fairlearn (and AIF360 with a privileged group) on a CSV.

usage: python fairlearn_reference.py <csv> <label> <prediction> <favorable> <protected,...> [attr=privileged ...]
Prints JSON: {"attributes": {name: {"groups": {value: {...}}, <metric>: value, ...}}}, with the intersection of
several protected attributes named "a&b" and its groups "x&y", as modelrelease names them.
"""

import json
import sys
import warnings

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, precision_score

warnings.filterwarnings("ignore")


def main() -> None:
    path, label, prediction, favorable, protected = sys.argv[1:6]
    privileged = dict(arg.split("=", 1) for arg in sys.argv[6:])
    df = pd.read_csv(path, dtype=str)
    y_true = (df[label].str.strip() == favorable).astype(int).to_numpy()
    y_pred = (df[prediction].str.strip() == favorable).astype(int).to_numpy()
    names = protected.split(",")
    columns = {name: df[name].str.strip() for name in names}
    if len(names) > 1:
        columns["&".join(names)] = df[names].apply(lambda r: "&".join(s.strip() for s in r), axis=1)
    out = {}
    for name, sf in columns.items():
        frame = MetricFrame(
            metrics={
                "selectionRate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "accuracy": accuracy_score,
                "precision": lambda t, p: precision_score(t, p, zero_division=0),
            },
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=sf.to_numpy(),
        )
        counts = sf.value_counts()
        groups = {
            str(value): {"count": int(counts[value]), **{k: float(v) for k, v in row.items()}}
            for value, row in frame.by_group.iterrows()
        }
        args = dict(y_true=y_true, y_pred=y_pred, sensitive_features=sf.to_numpy())
        entry = {
            "groups": groups,
            "demographicParityDifference": float(demographic_parity_difference(**args)),
            "demographicParityRatio": float(demographic_parity_ratio(**args)),
            "equalOpportunityDifference": float(equal_opportunity_difference(**args)),
            "equalOpportunityRatio": float(equal_opportunity_ratio(**args)),
            "equalizedOddsDifference": float(equalized_odds_difference(**args)),
            "equalizedOddsRatio": float(equalized_odds_ratio(**args)),
        }
        if name in privileged:
            entry.update(aif360_metrics(y_true, y_pred, sf.to_numpy(), privileged[name]))
        out[name] = entry
    print(json.dumps({"attributes": out}))


def aif360_metrics(y_true, y_pred, sf, privileged_value):
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

    values = sorted(set(sf))
    code = {v: i for i, v in enumerate(values)}
    attr = np.array([code[v] for v in sf], dtype=float)
    truth = BinaryLabelDataset(
        df=pd.DataFrame({"g": attr, "y": y_true.astype(float)}),
        label_names=["y"],
        protected_attribute_names=["g"],
        favorable_label=1.0,
        unfavorable_label=0.0,
    )
    predicted = truth.copy()
    predicted.labels = y_pred.astype(float).reshape(-1, 1)
    p = code[privileged_value]
    metric = ClassificationMetric(
        truth,
        predicted,
        unprivileged_groups=[{"g": float(c)} for v, c in code.items() if c != p],
        privileged_groups=[{"g": float(p)}],
    )
    return {
        "statisticalParityDifference": float(metric.statistical_parity_difference()),
        "disparateImpact": float(metric.disparate_impact()),
        "averageOddsDifference": float(metric.average_odds_difference()),
    }


if __name__ == "__main__":
    main()
