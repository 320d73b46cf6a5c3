"""Canonical Arrow schemas of the feedback store: what every stage after ingest can rely on.

Prompts are conversations (a list of {role, content} turns ending with the user's turn); answers are
plain strings. Unpaired rows carry a thumbs label; pairs carry the preferred and the other answer.
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.compute as pc

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
CONVERSATION = pa.list_(MESSAGE)

_COMMON = [
    ("event_id", pa.string()),
    ("source", pa.string()),
    ("ts", pa.timestamp("us")),
    ("user_id", pa.string()),
    ("model_version", pa.string()),
    ("prompt", CONVERSATION),
]

UNPAIRED_SCHEMA = pa.schema([*_COMMON, ("completion", pa.string()), ("label", pa.bool_())])
PAIRS_SCHEMA = pa.schema([*_COMMON, ("chosen", pa.string()), ("rejected", pa.string())])


def prompt_key(prompt: list[dict[str, str]]) -> str:
    """A stable hash of a conversation; the unit of the train/holdout split."""
    canonical = json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_holdout(prompt: list[dict[str, str]], holdout_fraction: float) -> bool:
    """True when this prompt belongs to the held-out split; the same prompt always lands on the same side."""
    return int(prompt_key(prompt)[:8], 16) / 0x1_0000_0000 < holdout_fraction




def holdout_flags(prompts: pa.ChunkedArray | pa.Array, holdout_fraction: float) -> list[bool]:
    """`is_holdout` for a whole column of conversations: the JSON text `prompt_key` hashes is built with
    Arrow string kernels (no dict or json.dumps per turn); only the sha256 runs per row."""
    out: list[bool] = []
    threshold = holdout_fraction * 0x1_0000_0000
    for chunk in prompts.chunks if isinstance(prompts, pa.ChunkedArray) else [prompts]:
        turns = chunk.values
        role, content = (_json_string(turns.field(f)) for f in ("role", "content"))
        turn_text = pc.binary_join_element_wise("[", role, ", ", content, "]", "")
        # offsets index `values` as a whole, so a sliced chunk reads its own turns
        joined = pc.binary_join(pa.ListArray.from_arrays(chunk.offsets, turn_text), ", ")
        for text in pc.binary_join_element_wise("[", joined, "]", "").to_pylist():
            out.append(int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") < threshold)
    return out


# json.dumps(ensure_ascii=False) escapes exactly these: backslash, quote, and the C0 control characters.
_JSON_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"),
                 ("\b", "\\b"), ("\f", "\\f")]
_OTHER_CONTROLS = [(chr(c), f"\\u{c:04x}") for c in range(0x20) if chr(c) not in "\n\r\t\b\f"]


def _json_string(strings: pa.Array) -> pa.Array:
    """Each string as json.dumps(ensure_ascii=False) writes it (quoted and escaped); null as `null`."""
    strings = strings.cast(pa.string())
    if pc.any(pc.match_substring_regex(strings, '[\\x00-\\x1f\\\\"]')).as_py():  # most texts need no escape
        for char, escaped in _JSON_ESCAPES + _OTHER_CONTROLS:
            if pc.any(pc.match_substring(strings, char)).as_py():
                strings = pc.replace_substring(strings, char, escaped)
    return pc.fill_null(pc.binary_join_element_wise('"', strings, '"', ""), "null")
