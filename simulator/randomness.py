"""Counter-based randomness: a pure function of (key, counter), no generator state.

A device's noise at an instant must be the same whichever process computes it, in whatever
order (live readings, a restarted run, the history export). ``random.Random(seed)`` per value
is slow to seed; a SplitMix64 finaliser over ``key + counter`` is a few integer operations and
passes the usual statistical tests for this use (Steele et al., "Fast splittable pseudorandom
number generators", 2014).
"""

from __future__ import annotations

import hashlib

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_SQRT3 = 3**0.5


def stable_key(*parts: object) -> int:
    """A 64-bit key from ``parts`` that is the same in every process (unlike ``hash()``)."""
    text = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def mix64(key: int, counter: int) -> int:
    """SplitMix64 of the ``counter``-th step after ``key``: a uniform 64-bit integer."""
    z = (key + (counter + 1) * _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def uniform(key: int, counter: int) -> float:
    """Uniform in [0, 1)."""
    return (mix64(key, counter) >> 11) * (1.0 / (1 << 53))


def normal(key: int, counter: int) -> float:
    """Approximately standard normal (Irwin-Hall of four 16-bit uniforms): mean 0, sd 1.

    Bounded to +-3.46, which suits sensor noise (no absurd outliers; anomalies are injected
    on purpose, never by chance).
    """
    z = mix64(key, counter)
    total = (z & 0xFFFF) + ((z >> 16) & 0xFFFF) + ((z >> 32) & 0xFFFF) + (z >> 48)
    # Sum of four U(0, 1): mean 2, variance 1/3.
    return (total * (1.0 / 65536) - 2.0) * _SQRT3
