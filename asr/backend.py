"""The torch backend of `runtime.asr.TransducerModel`: a checkpoint driven by the runtime's own stream.

`TorchTransducer` puts a `Transducer` (asr/model.py) behind the interface that
`runtime.asr.OnnxTransducer` implements on the exported graphs, so `runtime.asr.AsrStream`
(chunking, endpointing, search) runs on either: training's dev WER, the IQD's caches
(`iqd/replay.py`) and its evaluation on continuous recordings (`iqd/streams.py`), and the tests
that hold the export to its checkpoint. The geometry comes from the checkpoint's config; inputs
and outputs are numpy arrays, as onnxruntime's; the encoder state stays in torch tensors.

`encode` is the one thing the ONNX backend has no twin of: whole utterances at once under the
chunk mask (`Encoder.forward`), batched, which computes what `run_encoder` computes chunk by
chunk (tests/asr/test_model.py) at a fraction of the cost; `AsrStream.search_encoder_out` then
searches its output chunk by chunk.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from asr.model import Transducer
from runtime.asr import AsrStream, EncoderState, TransducerModel
from runtime.features import FbankConfig


class TorchTransducer(TransducerModel):
    """A checkpoint's encoder, decoder and joiner with the token pieces; shared, never mutated."""

    def __init__(self, model: Transducer, tokens: Sequence[str], fbank: FbankConfig = FbankConfig()) -> None:
        cfg = model.cfg
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.step_frames, self.shift_frames = cfg.step_input_frames, cfg.chunk_input_frames
        self.chunk_frames, self.context_size, self.vocab_size = cfg.chunk_frames, cfg.context_size, cfg.vocab_size
        self.fbank = fbank
        self.tokens = list(tokens)
        if len(self.tokens) != self.vocab_size:
            raise ValueError(f"{len(self.tokens)} token pieces for a model of {self.vocab_size} tokens")

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "TorchTransducer":
        """A checkpoint of `heed train asr` with the tokenizer beside it (tokens.model)."""
        from asr.export import load_checkpoint
        from asr.tokenizer import Tokenizer

        model, _ = load_checkpoint(path)
        return cls(model, Tokenizer(Path(path).parent / "tokens.model").pieces())

    def init_state(self) -> EncoderState:
        return self.model.encoder.init_state(1, self.device)

    @torch.no_grad()
    def run_encoder(self, x: np.ndarray, state: EncoderState) -> tuple[np.ndarray, EncoderState]:
        feats = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None].to(self.device)
        y, state = self.model.encoder.step(feats, state)
        return self.model.encoder_proj(y)[0].cpu().numpy(), state

    @torch.no_grad()
    def decode(self, contexts: np.ndarray) -> np.ndarray:
        return self.model.decoder(torch.from_numpy(contexts).to(self.device))[:, -1].cpu().numpy()

    @torch.no_grad()
    def join(self, enc: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return self.model.joiner(torch.from_numpy(enc).to(self.device), torch.from_numpy(dec).to(self.device)).cpu().numpy()

    @torch.no_grad()
    def encode(self, feats: Sequence[torch.Tensor]) -> list[np.ndarray]:
        """Projected encoder output (T', joiner_dim) of each utterance's fbank frames (T, n_mels),
        whole and batched under the chunk mask; T' = encoder_frames(T)."""
        x = torch.nn.utils.rnn.pad_sequence(list(feats), batch_first=True).to(self.device)
        lens = torch.tensor([len(f) for f in feats], device=self.device)
        enc, enc_lens = self.model.encoder(x, lens)
        enc = self.model.encoder_proj(enc).cpu()
        return [enc[i, : int(n)].numpy() for i, n in enumerate(enc_lens)]


def decode_utterances(asr: TorchTransducer, feats: Sequence[torch.Tensor], beam: int = 1) -> list[list[int]]:
    """The token ids of each utterance's fbank frames (T, n_mels): the whole-utterance encoder
    (`TorchTransducer.encode`), searched chunk by chunk by the runtime's stream (greedy by default)."""
    stream = AsrStream(asr, beam=beam)
    out = []
    for enc in asr.encode(feats):
        stream.restart(0)
        stream.search_encoder_out(enc)
        out.append(list(stream.final_hypothesis().tokens))
    return out
