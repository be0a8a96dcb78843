-- Large arguments and results are stored zstd-compressed: the compressed JSON in
-- `*_zstd`, and in the JSON column only a stub (`{}`, or for a result its `_meta`, which
-- analytics reads for reported costs). Readers take the compressed column when present.
ALTER TABLE tasks ADD COLUMN arguments_zstd BLOB;
ALTER TABLE tasks ADD COLUMN result_zstd BLOB;
