"""The evaluation harness: benchmark units (loader + official scorer), judges, results and reports."""
