"""Anomaly score of the refined index days (seed 001's next step): scikit-learn's IsolationForest. Pure: no I/O.

Seed 001's notebook stops at "features ready for Isolation Forest": amplitude, volatility %, the volatility z-score
and the daily change. This fits the forest on exactly those columns of the refined table (``ibov_refined``) and
gives every day a score (higher = more anomalous: the negated ``score_samples``) and a flag (the forest's outlier
label). The forest is deterministic for a fixed ``random_state`` and the same input rows, so a run can be repeated
and checked (``check_reproducible``); the settings go into the materialisation metadata (``AnomalySettings.as_metadata``).

Days whose features are incomplete (the first 19 sessions of a history have no 20-session z-score) are not
scored; they are counted in ``AnomalyResult.unscored``, never given a made-up score.

The forest is refitted on the whole history at every run, so adding days can move earlier scores a little: the
score is relative to the history it was fitted on (``AnomalyResult.fitted_on`` names its span).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from b3_dagster.model import ANOMALY_FLAG, ANOMALY_SCORE
from b3_dagster.quality import CheckOutcome
from b3_dagster.transforms.index_features import DAILY_CHANGE_PCT, DATA, RANGE, VOL_ZSCORE, VOLATILITY_PCT

FEATURES = (RANGE, VOLATILITY_PCT, VOL_ZSCORE, DAILY_CHANGE_PCT)
ANOMALY_COLUMNS = [DATA, *FEATURES, ANOMALY_SCORE, ANOMALY_FLAG]
# The table b3_refined_db.ibov_anomalies (storage/tables.py): one row per scored session.
ANOMALY_SCHEMA = pa.schema([pa.field(DATA, pa.date32(), nullable=False),
                            *(pa.field(name, pa.float64()) for name in FEATURES),
                            pa.field(ANOMALY_SCORE, pa.float64(), nullable=False),
                            pa.field(ANOMALY_FLAG, pa.int32(), nullable=False)])


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
    scored[ANOMALY_SCORE] = -forest.score_samples(matrix)
    scored[ANOMALY_FLAG] = (forest.predict(matrix) == -1).astype("int32")
    return AnomalyResult(scored[[DATA, *settings.features, ANOMALY_SCORE, ANOMALY_FLAG]], settings, unscored)


def check_reproducible(refined: pd.DataFrame, result: AnomalyResult) -> CheckOutcome:
    """Fitting again on the same rows with the same settings gives the same scores and flags, day by day."""
    again = score_anomalies(refined, result.settings).scores
    same_days = list(again[DATA]) == list(result.scores[DATA])
    same_scores = same_days and np.array_equal(again[ANOMALY_SCORE].to_numpy(),
                                               result.scores[ANOMALY_SCORE].to_numpy())
    same_flags = same_days and np.array_equal(again[ANOMALY_FLAG].to_numpy(), result.scores[ANOMALY_FLAG].to_numpy())
    passed = same_days and same_scores and same_flags
    worst = (float(np.max(np.abs(again[ANOMALY_SCORE].to_numpy() - result.scores[ANOMALY_SCORE].to_numpy())))
             if same_days and len(again) else None)
    return CheckOutcome(passed, f"a second fit with random_state={result.settings.random_state} reproduces all "
                                f"{len(again)} scores and flags exactly" if passed else
                        f"a second fit differs: same days {same_days}, same scores {same_scores}, same flags "
                        f"{same_flags}", {"days": len(again), "max_score_difference": worst,
                                          "random_state": result.settings.random_state})
