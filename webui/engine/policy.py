"""The scheduler's pure decisions: who gets the next slot, how many slots fit, how much cache is reused."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def pick_next(waiting_users: Sequence[str | None], active: Mapping[str, int]) -> int:
    """Which waiting request gets the next free slot: the user holding the fewest slots, first come first.

    Requests without a user (single-user mode) all count as holding none, so the line stays FIFO;
    in team mode a user never gets a second slot while someone holding fewer waits.
    """
    best, best_key = 0, None
    for index, user in enumerate(waiting_users):
        key = active.get(user, 0) if user is not None else 0
        if best_key is None or key < best_key:
            best, best_key = index, key
    return best


def choose_parallel(requested: int | None, kv_bytes_per_sequence: int, free_bytes: int) -> int:
    """How many sequences one context holds: the flag when given, else up to 4 while their KV cache
    takes at most half of the free memory (the rest is for weights, compute buffers and the OS)."""
    if requested:
        return max(1, requested)
    if free_bytes <= 0 or kv_bytes_per_sequence <= 0:
        return 4
    for n in (4, 3, 2):
        if n * kv_bytes_per_sequence <= free_bytes // 2:
            return n
    return 1


def kv_bytes_per_token(metadata: Mapping[str, str], bytes_per_value: float) -> int:
    """Bytes of K and V cache one token takes, from a GGUF's metadata (0 when it does not say)."""
    arch = metadata.get("general.architecture", "")

    def number(key: str) -> int:
        try:
            return int(float(metadata.get(f"{arch}.{key}", "0") or 0))
        except ValueError:
            return 0

    layers, heads = number("block_count"), number("attention.head_count")
    kv_heads = number("attention.head_count_kv") or heads
    head_dim = number("attention.key_length") or (number("embedding_length") // heads if heads else 0)
    value_dim = number("attention.value_length") or head_dim
    return int(layers * kv_heads * (head_dim + value_dim) * bytes_per_value)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two sequences share (the part of a cached prompt that is reused)."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
