-- purpose: messages that end in no canonical row -> quarantine with the reason and the message
-- grain: one row per unused message
-- parameters: none (reads the temp table message_trees_classified)
SELECT c.event_id, c.source, c.problem AS reason,
       to_json({'message_id': m.message_id, 'parent_id': m.parent_id, 'tree_id': m.tree_id, 'role': m.role,
                'text': m.text, 'rank': m.rank, 'emojis': m.emojis}) AS payload
FROM message_trees_classified AS c
JOIN raw_message_trees AS m ON m.source = c.source AND m.message_id = c.a_id
WHERE c.kind = 'message'
