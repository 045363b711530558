"""Clients and parsers for the outside world (B3, Yahoo). Plain Python: no dagster here."""
