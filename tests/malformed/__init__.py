"""A small valid registry to break one way at a time (used by test_malformed and test_fuzz_loaders)."""
