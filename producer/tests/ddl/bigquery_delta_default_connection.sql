-- nyc-tlc-yellow: a BigLake table over the dataset's Delta table (BigQuery reads its _delta_log)
CREATE EXTERNAL TABLE `acme.lake.yellow`
WITH CONNECTION DEFAULT
OPTIONS (
  format = 'DELTA_LAKE',
  uris = ['gs://acme-lake/prod/nyc-tlc-yellow']
);
