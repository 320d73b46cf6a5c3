-- purpose: stage one slice of one input's read: each row as its landing table takes it (user ids
--          hashed, text PII-scrubbed, bytes decoded), with its key, timestamp, cursor value, content
--          hash and the first landing check it fails (_problem; NULL: the row is good)
-- grain: one row per row read
-- parameters: cap (TIMESTAMP: now plus ingest.future_skew), max_chars (INTEGER: ingest.max_text_chars)
--             and salt (VARCHAR: the store's user-id salt), each bound where the filled-in parts use it.
--             Filled in by pipeline/ingest/landing.py from the shape definition and the mapping, every
--             identifier quoted (never a value), in place of the upper-case names between double
--             underscores: READ, the columns as read (the key as _key, the time as _ts and _ts_raw, a
--             cursor of its own as _cur and _cur_raw, bytes beside their decoding, texts' suspect flags);
--             CHECKS, the landing checks as `WHEN <failed> THEN '<reason>'`, the first that holds wins;
--             STAGED, the landing columns as stored; CURSOR, `_cur, _cur_raw, ` when the cursor is a
--             column of its own, else nothing; CONTENT, the columns whose hash tells a changed row from
--             a re-read; READER, the Arrow reader registered for this slice
SELECT __STAGED__, _key, _ts, __CURSOR___problem, hash(__CONTENT__) AS _hash
FROM (
    SELECT *, CASE __CHECKS__ END AS _problem
    FROM (SELECT __READ__ FROM __READER__)
)
