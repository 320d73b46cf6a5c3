-- purpose: how many training prompts could give pairs from thumbs: prompts with an up and a down answer,
--          and the up x down pairs they give. An answer's label is its majority thumb; tied answers take no side
-- grain: one row (pairable prompts, pairs)
-- parameters: none; reads the registered relation train_unpaired (prompt, completion, label)
WITH answers AS (
    SELECT to_json(prompt)::VARCHAR AS prompt_key, completion, sum(CASE WHEN label THEN 1 ELSE -1 END) AS score
    FROM train_unpaired
    GROUP BY ALL
), sides AS (
    SELECT prompt_key, count(*) FILTER (WHERE score > 0) AS up, count(*) FILTER (WHERE score < 0) AS down
    FROM answers
    GROUP BY prompt_key
)
SELECT count(*) FILTER (WHERE up > 0 AND down > 0),
       coalesce(sum(up * down) FILTER (WHERE up > 0 AND down > 0), 0)
FROM sides
