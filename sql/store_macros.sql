-- purpose: macros the shapes' SQL shares, created on the store's connection whenever it opens
-- grain: scalar macros
-- parameters: none
-- messages_turns(text): a JSON list of {role, content} turns read as the canonical prompt type,
-- STRUCT(role VARCHAR, content VARCHAR)[] (pipeline/schema.py, CONVERSATION); NULL for NULL text. Every
-- shape reads its prompts through it, so the type is written once.
CREATE OR REPLACE TEMP MACRO messages_turns(text) AS
    from_json(text, '[{"role": "VARCHAR", "content": "VARCHAR"}]');
