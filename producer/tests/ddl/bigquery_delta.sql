-- mta-turnstile: a BigLake table over the dataset's Delta table (BigQuery reads its _delta_log)
CREATE EXTERNAL TABLE `acme.lake.mta_turnstile`
WITH CONNECTION `acme.us.lake`
OPTIONS (
  format = 'DELTA_LAKE',
  uris = ['gs://acme-lake/prod/mta-turnstile']
);
