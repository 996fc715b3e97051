"""Analytic FLOPs of the tagger's work, from the model config and a stream's work counters.

Counted: the multiply-adds of every matrix product and convolution, as 2 FLOPs each (LSTM gate
products for input and recurrent weights, the character CNN, the heads, the ARM). Not counted:
embedding lookups, element-wise gate nonlinearities, softmax and argmax (together a few percent
of an LSTM step). Pure python: the benchmark applies it to runtime.tagger's `TaggerStats`.
"""
from __future__ import annotations

from typing import Any, Mapping


def lstm_step(n_in: int, n_hidden: int) -> int:
    """One LSTM direction, one token: four gates over input and recurrent state."""
    return 2 * 4 * n_hidden * (n_in + n_hidden)


def per_letter(cfg: Mapping[str, Any]) -> int:
    return 2 * cfg["char_dim"] * cfg["char_channels"] * cfg["char_kernel"]


def per_uni_step(cfg: Mapping[str, Any]) -> int:
    """The unidirectional layers, their heads and (hybrid) the ARM, for one new token."""
    if not cfg["n_uni_layers"]:
        return 0
    token_dim = cfg["word_dim"] + cfg["char_channels"]
    n = sum(lstm_step(token_dim if k == 0 else cfg["uni_dim"], cfg["uni_dim"]) for k in range(cfg["n_uni_layers"]))
    n += 2 * cfg["uni_dim"] * (cfg["n_slots"] + cfg["n_intents"])
    if cfg["n_bi_layers"]:  # a hybrid: the ARM rides in the step
        n += 2 * ((cfg["uni_dim"] + cfg["n_slots"]) * cfg["arm_hidden"] + cfg["arm_hidden"])
    return n


def per_restart_word(cfg: Mapping[str, Any]) -> int:
    """The bidirectional layers and slot head, per word of the prefix a restart covers."""
    if not cfg["n_bi_layers"]:
        return 0
    first_in = cfg["uni_dim"] if cfg["n_uni_layers"] else cfg["word_dim"] + cfg["char_channels"]
    n = sum(2 * lstm_step(first_in if k == 0 else 2 * cfg["bi_dim"], cfg["bi_dim"]) for k in range(cfg["n_bi_layers"]))
    return n + 2 * 2 * cfg["bi_dim"] * cfg["n_slots"]


def per_restart(cfg: Mapping[str, Any]) -> int:
    """The intent head, once per restart."""
    return 2 * 2 * cfg["bi_dim"] * cfg["n_intents"] if cfg["n_bi_layers"] else 0


def total(cfg: Mapping[str, Any], stats: Mapping[str, int]) -> int:
    """FLOPs of a stream's work. stats: runtime.tagger.TaggerStats.to_dict()."""
    return (stats["n_letters"] * per_letter(cfg) + stats["n_uni_steps"] * per_uni_step(cfg)
            + stats["n_restart_words"] * per_restart_word(cfg) + stats["n_restarts"] * per_restart(cfg))
