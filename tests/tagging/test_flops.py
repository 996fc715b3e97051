from __future__ import annotations

import dataclasses

from tagging import flops
from tagging.model import KINDS


def test_flops_by_hand_for_a_tiny_hybrid() -> None:
    cfg = dataclasses.asdict(dataclasses.replace(
        KINDS["hybrid"], n_slots=3, n_intents=2, word_dim=4, char_dim=2, char_channels=4, char_kernel=3,
        uni_dim=8, bi_dim=5, arm_hidden=6))
    assert flops.per_letter(cfg) == 2 * 2 * 4 * 3
    # LSTM 8x(8+8)x4 MACs, heads 8x(3+2), ARM (8+3)x6+6
    assert flops.per_uni_step(cfg) == 2 * (4 * 8 * 16 + 8 * 5 + 11 * 6 + 6)
    # two directions of 4x5x(8+5) MACs, slot head 10x3
    assert flops.per_restart_word(cfg) == 2 * (2 * 4 * 5 * 13 + 10 * 3)
    assert flops.per_restart(cfg) == 2 * 10 * 2
    stats = {"n_letters": 10, "n_uni_steps": 3, "n_restarts": 2, "n_restart_words": 5}
    assert flops.total(cfg, stats) == (10 * flops.per_letter(cfg) + 3 * flops.per_uni_step(cfg)
                                       + 5 * flops.per_restart_word(cfg) + 2 * flops.per_restart(cfg))


def test_baselines_cost_what_their_layers_cost() -> None:
    bi = dataclasses.asdict(dataclasses.replace(KINDS["bi"], n_slots=3, n_intents=2))
    uni = dataclasses.asdict(dataclasses.replace(KINDS["uni"], n_slots=3, n_intents=2))
    assert flops.per_uni_step(bi) == 0 and flops.per_restart_word(uni) == 0
    # tokens are 100 + 32 wide; the bi model's second layer reads both directions of the first (256 wide)
    assert flops.per_restart_word(bi) == 2 * (2 * 4 * 128 * (132 + 128) + 2 * 4 * 128 * (256 + 128)) + 2 * 256 * 3
