"""Confounding by indication: propensity score, weighting (IPTW, overlap), nearest-neighbour matching, balance,
outcome analyses under each design and E-values (issue 12). Entry point: :func:`.study.study_confounding`;
result: :class:`.result.ConfoundingResult`. See docs/protocol.md (``[confounding]``) and docs/validation.md."""
