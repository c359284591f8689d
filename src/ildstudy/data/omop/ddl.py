"""The OMOP CDM v5.4 columns ildstudy writes and reads, with their SQL types (the v5.4 DDL of
github.com/OHDSI/CommonDataModel, ``inst/ddl/5.4/duckdb``, narrowed to the tables and columns used here).

``ildstudy synth --format omop`` creates its tables from :data:`DDL`; ``--omop FOLDER`` (CSV files) casts each
known column to its type, so a value that is not one (``'abc'`` as a ``value_as_number``) is a problem naming file,
line and column rather than a column silently read as text.
"""

from __future__ import annotations

DDL = {
    "person": "person_id BIGINT, gender_concept_id INTEGER, year_of_birth INTEGER, month_of_birth INTEGER, "
              "day_of_birth INTEGER, birth_datetime TIMESTAMP, race_concept_id INTEGER, ethnicity_concept_id INTEGER, "
              "location_id BIGINT, provider_id BIGINT, care_site_id BIGINT, person_source_value VARCHAR, "
              "gender_source_value VARCHAR, gender_source_concept_id INTEGER, race_source_value VARCHAR, "
              "race_source_concept_id INTEGER, ethnicity_source_value VARCHAR, ethnicity_source_concept_id INTEGER",
    "observation_period": "observation_period_id BIGINT, person_id BIGINT, observation_period_start_date DATE, "
                          "observation_period_end_date DATE, period_type_concept_id INTEGER",
    "condition_occurrence": "condition_occurrence_id BIGINT, person_id BIGINT, condition_concept_id INTEGER, "
                            "condition_start_date DATE, condition_start_datetime TIMESTAMP, condition_end_date DATE, "
                            "condition_end_datetime TIMESTAMP, condition_type_concept_id INTEGER, "
                            "condition_status_concept_id INTEGER, stop_reason VARCHAR, provider_id BIGINT, "
                            "visit_occurrence_id BIGINT, visit_detail_id BIGINT, condition_source_value VARCHAR, "
                            "condition_source_concept_id INTEGER, condition_status_source_value VARCHAR",
    "drug_exposure": "drug_exposure_id BIGINT, person_id BIGINT, drug_concept_id INTEGER, "
                     "drug_exposure_start_date DATE, drug_exposure_start_datetime TIMESTAMP, "
                     "drug_exposure_end_date DATE, drug_exposure_end_datetime TIMESTAMP, verbatim_end_date DATE, "
                     "drug_type_concept_id INTEGER, stop_reason VARCHAR, refills INTEGER, quantity DOUBLE, "
                     "days_supply INTEGER, sig VARCHAR, route_concept_id INTEGER, lot_number VARCHAR, "
                     "provider_id BIGINT, visit_occurrence_id BIGINT, visit_detail_id BIGINT, "
                     "drug_source_value VARCHAR, drug_source_concept_id INTEGER, route_source_value VARCHAR, "
                     "dose_unit_source_value VARCHAR",
    "measurement": "measurement_id BIGINT, person_id BIGINT, measurement_concept_id INTEGER, measurement_date DATE, "
                   "measurement_datetime TIMESTAMP, measurement_time VARCHAR, measurement_type_concept_id INTEGER, "
                   "operator_concept_id INTEGER, value_as_number DOUBLE, value_as_concept_id INTEGER, "
                   "unit_concept_id INTEGER, range_low DOUBLE, range_high DOUBLE, provider_id BIGINT, "
                   "visit_occurrence_id BIGINT, visit_detail_id BIGINT, measurement_source_value VARCHAR, "
                   "measurement_source_concept_id INTEGER, unit_source_value VARCHAR, unit_source_concept_id INTEGER, "
                   "value_source_value VARCHAR, measurement_event_id BIGINT, meas_event_field_concept_id INTEGER",
    "observation": "observation_id BIGINT, person_id BIGINT, observation_concept_id INTEGER, observation_date DATE, "
                   "observation_datetime TIMESTAMP, observation_type_concept_id INTEGER, value_as_number DOUBLE, "
                   "value_as_string VARCHAR, value_as_concept_id INTEGER, qualifier_concept_id INTEGER, "
                   "unit_concept_id INTEGER, provider_id BIGINT, visit_occurrence_id BIGINT, visit_detail_id BIGINT, "
                   "observation_source_value VARCHAR, observation_source_concept_id INTEGER, unit_source_value "
                   "VARCHAR, qualifier_source_value VARCHAR, value_source_value VARCHAR, observation_event_id BIGINT, "
                   "obs_event_field_concept_id INTEGER",
    "death": "person_id BIGINT, death_date DATE, death_datetime TIMESTAMP, death_type_concept_id INTEGER, "
             "cause_concept_id INTEGER, cause_source_value VARCHAR, cause_source_concept_id INTEGER",
    "concept": "concept_id INTEGER, concept_name VARCHAR, domain_id VARCHAR, vocabulary_id VARCHAR, "
               "concept_class_id VARCHAR, standard_concept VARCHAR, concept_code VARCHAR, valid_start_date DATE, "
               "valid_end_date DATE, invalid_reason VARCHAR",
    "concept_ancestor": "ancestor_concept_id INTEGER, descendant_concept_id INTEGER, "
                        "min_levels_of_separation INTEGER, max_levels_of_separation INTEGER",
}


def column_types(table: str) -> dict[str, str]:
    """``column -> SQL type`` of ``table`` (empty for a table not in :data:`DDL`)."""
    spec = DDL.get(table, "")
    return dict(c.split(" ", 1) for c in spec.split(", ")) if spec else {}
