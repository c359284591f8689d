"""Reference knowledge the cohort and analyses rely on: drug names, glucocorticoid equivalents."""
