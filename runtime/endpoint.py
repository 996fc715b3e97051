"""When an utterance is over: the endpointer's rules, in milliseconds of decoded audio.

One definition for everything that endpoints: the runtime's `AsrStream`, the bundle's `endpoint`
entry (`runtime/bundle.py`, `heed export bundle` writes these defaults) and the IQD's offline
evaluation, which places a segment's forced decision at its last token plus
`trailing_silence_ms` (`iqd/evaluate.py`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EndpointConfig:
    """When an utterance is over. Silence is time since the last emitted token (or since the start)."""

    trailing_silence_ms: float = 800.0  # after some speech was decoded
    silence_without_speech_ms: float = 5000.0  # nothing decoded at all
    max_utterance_ms: float = 20000.0

    def reached(self, now_ms: float, last_token_ms: float | None) -> bool:
        """now_ms: decoded audio of the segment; last_token_ms: the end of its last token's frame, None before any."""
        if now_ms >= self.max_utterance_ms:
            return True
        if last_token_ms is None:
            return now_ms >= self.silence_without_speech_ms
        return now_ms - last_token_ms >= self.trailing_silence_ms

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
