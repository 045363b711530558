"""Anomaly score of the refined index days (seed 001's next step): scikit-learn's IsolationForest. Pure: no I/O.

Seed 001's notebook stops at "features ready for Isolation Forest": amplitude, volatility %, the volatility z-score
and the daily change. This fits the forest on exactly those columns of the refined table (``ibov_refined``) and
gives every day a score (higher = more anomalous: the negated ``score_samples``) and a flag (the forest's outlier
label). The forest is deterministic for a fixed ``random_state`` and the same input rows, so a run can be repeated
and checked (``quality.check_reproducible``); the settings go into the materialisation metadata
(``AnomalySettings.as_metadata``).

Days whose features are incomplete (the first 19 sessions of a history have no 20-session z-score) are not
scored; they are counted in ``AnomalyResult.unscored``, never given a made-up score.

The forest is refitted on the whole history at every run, so adding days can move earlier scores a little: the
score is relative to the history it was fitted on (``AnomalyResult.fitted_on`` names its span).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import pandas as pd

from b3_dagster.model import ANOMALY_COLUMNS, ANOMALY_FEATURES, ANOMALY_FLAG, ANOMALY_SCHEMA, ANOMALY_SCORE, DATA

FEATURES = ANOMALY_FEATURES

__all__ = ["ANOMALY_COLUMNS", "ANOMALY_SCHEMA", "FEATURES", "AnomalyResult", "AnomalySettings", "score_anomalies"]


@dataclass(frozen=True)
class AnomalySettings:
    """Everything that decides the scores. ``contamination`` is the share of days labelled anomalous."""

    features: tuple[str, ...] = FEATURES
    n_estimators: int = 300
    max_samples: int | str = "auto"  # min(256, rows) per tree, scikit-learn's default
    contamination: float = 0.02  # about 5 days a year of ~250 sessions
    random_state: int = 1415

    def as_metadata(self) -> dict:
        values = asdict(self)
        values["features"] = list(self.features)
        values["algorithm"] = "sklearn.ensemble.IsolationForest"
        return values


@dataclass(frozen=True)
class AnomalyResult:
    scores: pd.DataFrame  # ANOMALY_COLUMNS, one row per scored day, by date
    settings: AnomalySettings
    unscored: list[dt.date] = field(default_factory=list)  # days with incomplete features

    @property
    def fitted_on(self) -> str:
        return f"{self.scores[DATA].min()}..{self.scores[DATA].max()}" if not self.scores.empty else "no rows"

    def anomalies(self) -> pd.DataFrame:
        return self.scores[self.scores[ANOMALY_FLAG] == 1]

    def metadata(self) -> dict:
        return {**self.settings.as_metadata(), "scored_days": len(self.scores), "unscored_days": len(self.unscored),
                "anomalous_days": int(self.scores[ANOMALY_FLAG].sum()), "fitted_on": self.fitted_on}


def score_anomalies(refined: pd.DataFrame, settings: AnomalySettings = AnomalySettings()) -> AnomalyResult:
    """Fit the forest on the refined rows' features and score every day whose features are all present."""
    missing = [name for name in (DATA, *settings.features) if name not in refined.columns]
    if missing:
        raise ValueError(f"the refined rows lack the feature columns {missing}")
    rows = refined.sort_values(DATA).reset_index(drop=True)
    if rows[DATA].duplicated().any():
        raise ValueError(f"the refined rows repeat days {sorted(set(rows.loc[rows[DATA].duplicated(), DATA]))[:5]}")
    complete = rows[list(settings.features)].notna().all(axis=1)
    scored = rows.loc[complete, [DATA, *settings.features]].reset_index(drop=True)
    unscored = list(rows.loc[~complete, DATA])
    if len(scored) < 2:
        raise ValueError(f"{len(scored)} day(s) with complete features: too few to fit an IsolationForest")
    from sklearn.ensemble import IsolationForest  # here: the tables module imports this one, sklearn is slow to load

    matrix = scored[list(settings.features)].to_numpy(dtype="float64")
    forest = IsolationForest(n_estimators=settings.n_estimators, max_samples=settings.max_samples,
                             contamination=settings.contamination, random_state=settings.random_state)
    forest.fit(matrix)
    samples = forest.score_samples(matrix)
    scored[ANOMALY_SCORE] = -samples
    # what forest.predict(matrix) == -1 says (decision_function = score_samples - offset_ < 0), without scoring every
    # day through the 300 trees a second time
    scored[ANOMALY_FLAG] = (samples - forest.offset_ < 0).astype("int32")
    return AnomalyResult(scored[[DATA, *settings.features, ANOMALY_SCORE, ANOMALY_FLAG]], settings, unscored)
