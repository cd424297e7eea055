"""The warehouse: a Parquet lake exported incrementally from the integrated DB, DuckDB data marts
over it, pattern mining, open data and reports (issue 7). See docs/warehouse.md."""
