-- Clinical loads: store fhir_resources.body without pglz compression.
--
-- Every merge writes each body once; with the default storage PostgreSQL tries pglz on every
-- body past the TOAST threshold (DocumentReference, long Encounters) and, on Synthea data,
-- keeps almost none of the saving: measured on the Synthea corpus in 2,000-row chunks, table
-- size +3% without compression, merge time per row about 20% lower. Bodies past the threshold
-- still move out of line into the TOAST table, uncompressed. Values, queries and indexes are
-- unchanged; rows written before this migration stay as they are (no rewrite).

ALTER TABLE fhir_resources ALTER COLUMN body SET STORAGE EXTERNAL;
