"""The cohort: registry tables + protocol -> attrition and analysis tables, one Ibis code path.

Every step is an Ibis expression run inside the database that holds the registry (embedded DuckDB, Spark or a
PostgreSQL server); only the results come back as pandas DataFrames. The rules are those of
``docs/protocol.md`` ("Rules: how the cohort is built", "Rules: the analysis tables").

Modules: :mod:`~ildstudy.cohort.source` (tables, drug names in SQL), :mod:`~ildstudy.cohort.steps` (the
steps), :mod:`~ildstudy.cohort.followup` (end of treatment and follow-up), :mod:`~ildstudy.cohort.tables`
(analysis tables, prednisone-equivalent doses), :mod:`~ildstudy.cohort.attrition`,
:mod:`~ildstudy.cohort.backend` (connections, by lookup), :mod:`~ildstudy.cohort.backends` and
:mod:`~ildstudy.cohort.spark` (the engines), :mod:`~ildstudy.cohort.build`.
"""

from __future__ import annotations

from ildstudy.cohort.attrition import CohortInvariantError
from ildstudy.cohort.backend import Connection, connect
from ildstudy.cohort.build import Cohort
from ildstudy.cohort.build import build_cohort as _build_cohort
from ildstudy.cohort.steps import STEP_IDS, STEPS, Step

__all__ = ["Cohort", "CohortInvariantError", "Connection", "STEPS", "STEP_IDS", "Step", "build_cohort", "connect"]


def build_cohort(source, protocol="huapaya2019") -> Cohort:
    """Build the study cohort and its analysis tables from registry tables in a database.

    Parameters
    ----------
    source : Registry, Ibis backend, duckdb connection, str or Path
        Where the five canonical tables (``patients, antibodies, medications, pft, adverse_events``, with
        the columns and SQL types of :mod:`ildstudy.data.schema`) live: a loaded
        :class:`~ildstudy.data.Registry` (copied into a new in-memory DuckDB), an Ibis backend or ``duckdb``
        connection (left open), a DuckDB file path (``study.duckdb``, ``duckdb:///abs/path``; opened
        read-only) or a ``postgresql://user:password@host:port/dbname`` URL (``ildstudy load DATA --db URL``
        writes one). The cohort SQL runs inside that database.
    protocol : Protocol, str or Path, default "huapaya2019"
        A :class:`~ildstudy.protocol.Protocol`, a built-in protocol name or a protocol TOML path.

    Returns
    -------
    Cohort
        Frozen dataclass; every DataFrame has a fresh ``RangeIndex``, fixed column order and dtypes, and a
        deterministic row order, identical on DuckDB and PostgreSQL (floating-point sums of doses may differ
        in the last bits).

        ``attrition``
            ``step, reason, excluded, remaining, remaining_<ARM>...``: a first row ``registry`` ("patients in
            the registry", excluded 0, remaining = all registry patients), then one row per step of
            :data:`STEPS` in order -- ``population, arm_drug, index_before_cut, ild_before_index, washout,
            both_arms, other_agents, baseline_pft, follow_up`` (steps whose protocol setting is off exclude 0). ``remaining_<ARM>`` (Int64) is ``<NA>`` for the ``registry`` and
            ``population`` rows (patients without an arm drug have no arm yet); from ``arm_drug`` on, the
            arm is that of the first arm drug. :meth:`Cohort.attrition_records` gives the
            ``results.json`` form.
        ``patients``
            One row per cohort patient, sorted by ``patient_id``: ``patient_id, arm, index_date``
            (datetime64; keep inside the tool), ``age`` (years at index, days / 365.25), ``sex`` (F/M),
            ``diagnosis``, ``antisynthetase`` (bool: any positive Jo-1, PL-7, PL-12, EJ, OJ, KS, Zo, Ha),
            ``smoking`` ("ever", "never" or None), ``baseline_fvc_pct_pred``, ``baseline_dlco_pct_pred``
            (baseline PFT; DLCO may be NaN), ``baseline_prednisone_mg`` (prednisone-equivalent mg/day on the
            index day; NaN only if a dose is missing), ``follow_up_months`` (end of follow-up, days / 30.4375),
            ``follow_up_end`` ("treatment_end", "max_months" or "data_cut"), ``treatment_months`` (months
            from index to the end of treatment, or to index + max_months / the data cut if treatment did
            not end before), ``discontinued`` (bool: treatment ended by then), ``treatment_end`` ("stop",
            "switch", "add_on" or None), ``stop_reason`` (stop reason recorded on the arm-drug prescription
            that ended the course, when ``treatment_end`` is "stop"; else None), ``treatment_end_drug`` (the
            drug switched to or added), then every other registered covariate of :mod:`ildstudy.variables`
            (``disease_duration_years, index_year, calendar_era, ild, smoking_status, race_ethnicity,
            height_cm``).
        ``outcomes``
            Long table ``patient_id, outcome, months, value`` for the protocol's outcomes:
            ``fvc_pct_pred`` and ``dlco_pct_pred`` (baseline PFT at months 0.0, then every PFT after the
            baseline window up to the end of follow-up at days / 30.4375; rows only where the value is
            present) and ``prednisone_mg`` (at each ``analysis.dose_months`` m whose day,
            index + round(m x 30.4375), is inside follow-up; ``months`` is m itself). Sorted by outcome
            (in that order), patient_id, months. ``outcome`` is a categorical whose categories are the
            protocol's outcomes in that order (``Protocol.cohort_outcomes``). Join ``patients`` for arm and
            covariates.
        ``adverse_events``
            ``patient_id, months, category, drug, serious, led_to_discontinuation``: events from index to
            the end of follow-up whose drug is empty or an arm drug of the patient's arm (``drug`` is the
            generic name or None; the booleans are pandas ``boolean``).
        ``excluded``
            ``patient_id, step``: every registry patient not in the cohort, with the one step it failed.
        ``censoring``
            ``reason, drug, n, n_<ARM>...``: cohort patients by why follow-up ended (``stop``, ``switch`` and
            ``add_on`` per drug, ``max_months``, ``data_cut``); see :func:`ildstudy.cohort.build.censoring_table`.
        ``warnings``
            Tuple of :class:`~ildstudy.errors.Problem` (severity "warning"): unrecognised drug spellings
            with row counts, dose evaluations left missing for lack of ``daily_dose_mg``.

    Raises
    ------
    DataError
        A table or column is missing or has the wrong type, or ``patient_id`` is missing or duplicated.
    IldStudyError
        The database cannot be opened or reached.
    CohortInvariantError
        Internal error: a registry patient is not accounted for exactly once (a bug; never bad data).

    Examples
    --------
    The default synthetic registry (``ildstudy synth --out registry``):

    >>> import tempfile
    >>> from ildstudy.synth import write_registry
    >>> from ildstudy.data import load_registry
    >>> folder = tempfile.mkdtemp()
    >>> truth = write_registry(folder, seed=2019)
    >>> cohort = build_cohort(load_registry(folder), "huapaya2019_published")
    >>> cohort.arm_counts
    {'AZA': 66, 'MMF': 44}
    >>> cohort.attrition[["step", "excluded", "remaining"]].values.tolist()[-2:]
    [['baseline_pft', 6, 115], ['follow_up', 5, 110]]
    >>> build_cohort(load_registry(folder)).arm_counts          # the default: no selection after index
    {'AZA': 75, 'MMF': 50}

    The same on PostgreSQL, after ``ildstudy load registry --db postgresql://...``:

    >>> cohort = build_cohort("postgresql://ildstudy:ildstudy@localhost/ildstudy")  # doctest: +SKIP
    """
    return _build_cohort(source, protocol)
