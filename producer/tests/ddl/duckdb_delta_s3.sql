-- mta-turnstile: the dataset's Delta table in DuckDB
INSTALL delta;
LOAD delta;
CREATE OR REPLACE VIEW mta_turnstile AS SELECT * FROM delta_scan('s3://acme-lake/prod/mta-turnstile');
