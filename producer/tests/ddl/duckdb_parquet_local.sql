-- plain-weekly: the dataset's Hive-partitioned Parquet files in DuckDB
CREATE OR REPLACE VIEW plain_weekly AS SELECT * FROM read_parquet('/data/lake/plain-weekly/*/*.parquet', hive_partitioning = true);
