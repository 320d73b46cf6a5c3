-- purpose: thumbs as votes on an item: one answer to one prompt
-- grain: one row per row of `unpaired_in` (prompt, completion, label)
-- parameters: none
SELECT md5(to_json(prompt)::VARCHAR) || ':' || md5(completion) AS item_key, label AS positive, user_id
FROM unpaired_in
