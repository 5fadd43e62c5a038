-- plain-weekly: the dataset's Hive-partitioned Parquet files (table = false: no Delta log)
CREATE EXTERNAL TABLE `acme.lake.plain`
WITH PARTITION COLUMNS (year INT64)
WITH CONNECTION DEFAULT
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://acme-lake/prod/plain-weekly/*'],
  hive_partition_uri_prefix = 'gs://acme-lake/prod/plain-weekly'
);
