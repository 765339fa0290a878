"""Fuzzing: checks (fuzz/checks.py) and the atheris runner (fuzz/targets.py)."""
