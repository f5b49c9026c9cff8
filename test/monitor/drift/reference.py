"""Generates drift datasets and what scipy (and Evidently's rules on top of it) say about them.

Usage: reference.py <out-dir>. Writes one reference and one current file per case into out-dir and prints JSON:
{case: {reference, current, categorical, columns: {name: {type, ks?, wasserstein?, chiSquare?, jensenShannon?,
psi, drifted}}, datasetDrift}}. Evidently's defaults: KS (p < 0.05) and chi-square (p < 0.05) up to 1000 reference
rows, normed Wasserstein (>= 0.1) and Jensen-Shannon (>= 0.1) above; PSI with Evidently's get_binned_data.
"""

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.spatial import distance

OUT = Path(sys.argv[1])
rng = np.random.default_rng(20261201)


def fill_zeroes(shares):
    nonzero = shares[shares != 0]
    if nonzero.size == 0:
        return shares
    low = nonzero.min()
    shares = shares.copy()
    shares[shares == 0] = low / 10**6 if low <= 0.0001 else 0.0001
    return shares


def psi(ref_shares, cur_shares):
    r = fill_zeroes(ref_shares)
    c = fill_zeroes(cur_shares)
    return float(np.sum((r - c) * np.log(r / c)))


def discrete_shares(ref, cur):
    keys = list(dict.fromkeys(list(ref) + list(cur)))
    r = np.array([np.sum(ref == k) for k in keys], dtype=float) / len(ref)
    c = np.array([np.sum(cur == k) for k in keys], dtype=float) / len(cur)
    return r, c


def numerical(ref, cur):
    ks = stats.ks_2samp(ref, cur)
    dist = stats.wasserstein_distance(ref, cur)
    normed = dist / max(np.std(ref), 0.001)
    if len(np.unique(ref)) > 20:
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        r = np.histogram(ref, edges)[0] / len(ref)
        c = np.histogram(cur, edges)[0] / len(cur)
    else:
        r, c = discrete_shares(ref, cur)
    small = len(ref) <= 1000
    drifted = bool(ks.pvalue < 0.05) if small else bool(normed >= 0.1)
    return {
        "type": "numerical",
        "method": "ks" if small else "wasserstein",
        "ks": {"statistic": float(ks.statistic), "pValue": float(ks.pvalue)},
        "wasserstein": {"distance": float(dist), "normed": float(normed)},
        "psi": psi(r, c),
        "drifted": drifted,
    }


def categorical(ref, cur):
    keys = sorted(set(ref) | set(cur))
    ref_counts = np.array([np.sum(ref == k) for k in keys], dtype=float)
    cur_counts = np.array([np.sum(cur == k) for k in keys], dtype=float)
    expected = ref_counts * (len(cur) / len(ref))
    with np.errstate(divide="ignore", invalid="ignore"):
        chi = stats.chisquare(cur_counts, expected)
    js = float(distance.jensenshannon(ref_counts, cur_counts))
    small = len(ref) <= 1000
    drifted = bool(chi.pvalue < 0.05) if small else bool(js >= 0.1)
    statistic = float(chi.statistic)
    return {
        "type": "categorical",
        "method": "chisquare" if small else "jensenshannon",
        "chiSquare": {"statistic": None if math.isinf(statistic) else statistic, "pValue": float(chi.pvalue)},
        "jensenShannon": js,
        "psi": psi(ref_counts / len(ref), cur_counts / len(cur)),
        "drifted": drifted,
    }


def write(path, columns):
    names = list(columns)
    rows = len(columns[names[0]])
    if path.suffix == ".jsonl":
        with open(path, "w") as f:
            for i in range(rows):
                record = {}
                for n in names:
                    v = columns[n][i]
                    record[n] = v.item() if hasattr(v, "item") else v
                f.write(json.dumps(record) + "\n")
    else:
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(names)
            for i in range(rows):
                w.writerow([repr(float(columns[n][i])) if columns[n].dtype.kind == "f" else columns[n][i] for n in names])


def case(name, ref, cur, categorical_names=(), ext="csv"):
    ref_path = OUT / f"{name}-reference.{ext}"
    cur_path = OUT / f"{name}-current.{ext}"
    write(ref_path, ref)
    write(cur_path, cur)
    columns = {}
    for col in ref:
        if col in categorical_names or ref[col].dtype.kind not in "fi":
            columns[col] = categorical(ref[col].astype(str), cur[col].astype(str))
        else:
            columns[col] = numerical(ref[col].astype(float), cur[col].astype(float))
    share = sum(c["drifted"] for c in columns.values()) / len(columns)
    return {
        "reference": str(ref_path),
        "current": str(cur_path),
        "categorical": list(categorical_names),
        "columns": columns,
        "driftedShare": share,
        "datasetDrift": share >= 0.5,
    }


def cats(n, probs, labels=("red", "green", "blue", "black")):
    return rng.choice(np.array(labels[: len(probs)]), size=n, p=probs)


cases = {}
# Small, unshifted: exact KS with unequal sizes (the inside method), chi-square with the same proportions.
cases["small-same"] = case(
    "small-same",
    {"a": rng.normal(0, 1, 500), "b": rng.exponential(2, 500), "color": cats(500, [0.5, 0.3, 0.2])},
    {"a": rng.normal(0, 1, 400), "b": rng.exponential(2, 400), "color": cats(400, [0.5, 0.3, 0.2])},
)
# Small, shifted, equal sizes (the outside-square formula); a category the current data lost; a code column of numbers
# declared categorical; a low-cardinality numerical column (PSI over its distinct values).
cases["small-shift"] = case(
    "small-shift",
    {
        "a": rng.normal(0, 1, 300),
        "b": rng.normal(5, 2, 300),
        "count": rng.integers(0, 6, 300),
        "code": rng.integers(1, 4, 300),
        "color": cats(300, [0.4, 0.3, 0.2, 0.1]),
    },
    {
        "a": rng.normal(0.6, 1, 300),
        "b": rng.normal(5.1, 2, 300),
        "count": rng.integers(1, 7, 300),
        "code": rng.choice([1, 2, 3], 300, p=[0.6, 0.3, 0.1]),
        "color": cats(300, [0.2, 0.3, 0.5]),
    },
    categorical_names=("code",),
)
# Large: normed Wasserstein and Jensen-Shannon; ties from rounding; a category only the current data has.
cases["large"] = case(
    "large",
    {
        "a": np.round(rng.normal(10, 3, 5000), 1),
        "b": rng.gamma(2, 2, 5000),
        "city": cats(5000, [0.25, 0.25, 0.25, 0.25]),
        "plan": cats(5000, [0.7, 0.3], labels=("basic", "pro", "max")),
    },
    {
        "a": np.round(rng.normal(10.2, 3, 3000), 1),
        "b": rng.gamma(2, 3, 3000),
        "city": cats(3000, [0.1, 0.2, 0.3, 0.4]),
        "plan": cats(3000, [0.6, 0.3, 0.1], labels=("basic", "pro", "max")),
    },
)
# A small reference against a large current sample: scipy's asymptotic p-value (kstwo with n = round(en) > 140).
cases["asymptotic"] = case(
    "asymptotic",
    {"a": rng.normal(0, 1, 800), "b": rng.normal(0, 1, 800), "c": rng.normal(0, 1, 800), "d": rng.uniform(0, 1, 800)},
    {
        "a": rng.normal(0, 1, 12000),
        "b": rng.normal(0.08, 1, 12000),
        "c": rng.normal(0.3, 1, 12000),
        "d": rng.uniform(0, 1, 12000),
    },
)
# n = round(en) <= 140: the Durbin matrix, Pomeranz and Smirnov regions.
cases["asymptotic-small"] = case(
    "asymptotic-small",
    {"a": rng.normal(0, 1, 100), "b": rng.normal(0, 1, 100), "c": rng.normal(0, 1, 100), "d": rng.normal(0, 1, 100)},
    {
        "a": rng.normal(0, 1, 11000),
        "b": rng.normal(0.25, 1, 11000),
        "c": rng.normal(0.6, 1, 11000),
        "d": rng.normal(1.5, 1, 11000),
    },
)
# JSON Lines, with a new category in the current data (chi-square's statistic is infinite).
cases["jsonl-new-category"] = case(
    "jsonl-new-category",
    {"x": rng.normal(0, 1, 200), "kind": cats(200, [0.5, 0.5])},
    {"x": rng.normal(0, 1, 250), "kind": cats(250, [0.4, 0.4, 0.2])},
    ext="jsonl",
)

json.dump(cases, sys.stdout)
