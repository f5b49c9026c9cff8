"""Evidently's DataDriftPreset on the reference and current CSVs bench/drift.ts wrote, timed from reading the CSVs.

Usage: drift-evidently.py <reference.csv> <current.csv> <numerical,columns> <categorical,columns>
Prints JSON: {seconds, readSeconds, columns: {name: {method, score, threshold, drifted}}, driftedShare}.
Runs with pandas 2 on PYTHONPATH (bench/drift.ts sets it): Evidently 0.7 does not import under pandas 3.
"""

import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

reference_path, current_path = sys.argv[1], sys.argv[2]
numerical = [c for c in sys.argv[3].split(",") if c]
categorical = [c for c in sys.argv[4].split(",") if c]
dtypes = {c: str for c in categorical}

started = time.perf_counter()
reference = pd.read_csv(reference_path, dtype=dtypes)
current = pd.read_csv(current_path, dtype=dtypes)
read_seconds = time.perf_counter() - started
definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
snapshot = Report([DataDriftPreset()]).run(
    Dataset.from_pandas(current, data_definition=definition),
    Dataset.from_pandas(reference, data_definition=definition),
)
result = snapshot.dict()
seconds = time.perf_counter() - started

columns = {}
drifted_share = None
for metric in result["metrics"]:
    config = metric["config"]
    if config["type"].endswith("ValueDrift"):
        method, threshold, score = config["method"], config["threshold"], float(metric["value"])
        # Evidently's rule: a p-value drifts below its threshold, a distance at or above it.
        drifted = score < threshold if "p_value" in method else score >= threshold
        columns[config["column"]] = {"method": method, "score": score, "threshold": threshold, "drifted": drifted}
    elif config["type"].endswith("DriftedColumnsCount"):
        drifted_share = metric["value"]["share"]

print(json.dumps({"seconds": seconds, "readSeconds": read_seconds, "columns": columns, "driftedShare": drifted_share}))
