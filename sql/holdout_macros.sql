-- purpose: the train/holdout split by prompt hash, in SQL: the same membership as alignloop.schema.is_holdout
--          (sha256 of the prompt as Python's json.dumps([[role, content], ...], ensure_ascii=False) writes it),
--          and prompts written as Python's json module writes them, so SQL and Python agree byte for byte
-- grain: scalar macros, created on each connection that splits a snapshot
-- parameters: none (holdout_position(prompt) < holdout_fraction is the held-out side)
-- json_py_string(s) is a JSON string literal escaped exactly as Python's json module escapes it with
-- ensure_ascii=False: backslash and quote, \b \t \n \f \r, other control characters as lowercase \u00xx.
-- DuckDB's to_json writes those in upper case, so it cannot be used for a hash that must match.
CREATE OR REPLACE TEMP MACRO json_py_string(s) AS
    CASE WHEN s IS NULL THEN 'null'
         WHEN NOT regexp_matches(s, '[\x00-\x1f]') THEN '"' || replace(replace(s, '\', '\\'), '"', '\"') || '"'
         ELSE '"' || replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(s, '\', '\\'), '"', '\"'), chr(0), '\u0000'), chr(1), '\u0001'), chr(2), '\u0002'), chr(3), '\u0003'), chr(4), '\u0004'), chr(5), '\u0005'), chr(6), '\u0006'), chr(7), '\u0007'), chr(8), '\b'), chr(9), '\t'), chr(10), '\n'), chr(11), '\u000b'), chr(12), '\f'), chr(13), '\r'), chr(14), '\u000e'), chr(15), '\u000f'), chr(16), '\u0010'), chr(17), '\u0011'), chr(18), '\u0012'), chr(19), '\u0013'), chr(20), '\u0014'), chr(21), '\u0015'), chr(22), '\u0016'), chr(23), '\u0017'), chr(24), '\u0018'), chr(25), '\u0019'), chr(26), '\u001a'), chr(27), '\u001b'), chr(28), '\u001c'), chr(29), '\u001d'), chr(30), '\u001e'), chr(31), '\u001f') || '"'
    END;

-- Most prompts hold no backslash, quote or control character and no NULL: DuckDB's to_json then writes no
-- backslash and no null, and the turns need no escaping, so they are written as they are: 0.34 s for the
-- 2.2M thumbs of the 10M benchmark store, where rewriting to_json's separators in place took 0.80 s (and
-- escaping turn by turn 4x more). Any other prompt takes the escaping path.
CREATE OR REPLACE TEMP MACRO prompt_json_py(prompt) AS
    CASE WHEN NOT contains(to_json(prompt)::VARCHAR, '\') AND NOT contains(to_json(prompt)::VARCHAR, ':null')
         THEN '[' || array_to_string(list_transform(prompt,
                  lambda m: '["' || m.role || '", "' || m.content || '"]'), ', ') || ']'
         ELSE '[' || array_to_string(list_transform(prompt,
                  lambda m: '[' || json_py_string(m.role) || ', ' || json_py_string(m.content) || ']'), ', ') || ']'
    END;

-- The prompt as json.dumps(prompt, ensure_ascii=False) writes the turns as dicts: the text the shape's
-- reward model reads a prompt as.
CREATE OR REPLACE TEMP MACRO prompt_json_py_turns(prompt) AS
    '[' || array_to_string(list_transform(prompt,
        lambda m: '{"role": ' || json_py_string(m.role) || ', "content": ' || json_py_string(m.content) || '}'),
        ', ') || ']';

-- Where a prompt falls in [0, 1): the first 32 bits of its hash over 2^32, as is_holdout computes it.
CREATE OR REPLACE TEMP MACRO holdout_position(prompt) AS
    ('0x' || left(sha256(prompt_json_py(prompt)), 8))::UBIGINT::DOUBLE / 4294967296.0;
