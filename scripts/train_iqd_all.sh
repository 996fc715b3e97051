#!/usr/bin/env bash
# Train the three intended-query detectors on one frozen ASR, export the E2E one, run the benchmark.
#
#   MINUTES=5 scripts/train_iqd_all.sh exp/asr-char/final.pt data/c14k exp/iqd
#
# ASR_CKPT  the frozen ASR (tokens.model beside it)
# CORPUS    corpus with train/dev/test.jsonl (directed labels, speech times)
# EXPDIR    gets cache/ (the ASR's outputs), e2e/, independent/, cascade/, fusion/ (the E2E reading its
#           label history as text too, iqd/fusion.py), iqd-e2e-export/ (exported from fusion/), bench/
# The deciders start at the speech-onset gate (runtime/iqd.py: OnsetGate) with its defaults, which
# each model.pt, the export and the benchmark carry (scripts/choose_onset_gate.py chose them on dev).
#
# Environment: MINUTES (training budget per detector, default 5), TRAIN_LIMIT (training utterances
# run through the ASR, default 3000), IND_LR (the independent detector's learning rate, default
# 0.005), N_STREAMS (continuous test recordings, default 20), TRAIN_STREAMS and DEV_STREAMS (continuous
# recordings of 30-60 s the detectors train on and choose their policies on, defaults 80 and 40), JOBS
# (parallel processes of one thread each, default 1), DOCS (where the benchmark's JSON, markdown and
# figures go, default EXPDIR/bench; docs/ for the published numbers), HEED_PY (the interpreter).
# The ASR's tokens (the detectors' label history): SEARCH (beam, default: the runtime's modified
# beam search, what the shipped pipeline feeds its IQD; or greedy), BEAM (4), LM (the character
# n-gram LM fused into the beam search, default the default bundle's models/default/asr/lm.npz (the
# LM depends only on the training text and the tokens, not on the ASR checkpoint) when it exists; LM= for
# none), LM_SCALE / LM_BONUS / LM_EOS_SCALE (default: runtime.lm.FUSION_DEFAULTS, the bundle's), TRAIN_SEARCH
# (the search of the training splits, default SEARCH; another one mixes searches, with a warning).
# FRESH: corpora the ASR never heard, as SEED:SIZE words (e.g. "23:5000 29:12000 31:20000"): each is
# built (heed corpus build --seed SEED --size SIZE, into FRESH_DIR/seed-SEED, default EXPDIR/fresh),
# its train split cached (cropped, all of it) into FRESH_DIR/seed-SEED/cache, and the detectors train
# on those instead of the corpus's own training utterances (--extra-train ... --no-main-train; the
# training recordings stay): the ASR transcribes its own training audio far better than anything
# it will meet, and detectors trained on those histories trust them too much (docs/iqd.md).
# SEEDS: E2E joint networks trained (seeds 0 .. SEEDS-1, default 1) and fused as their mean logit.
set -euo pipefail
if [ $# -ne 3 ]; then
    sed -n '2,31p' "$0" >&2
    exit 2
fi
ASR=$1 CORPUS=$2 EXP=$3
MINUTES=${MINUTES:-5}
TRAIN_LIMIT=${TRAIN_LIMIT:-3000}
N_STREAMS=${N_STREAMS:-20}
TRAIN_STREAMS=${TRAIN_STREAMS:-80}
DEV_STREAMS=${DEV_STREAMS:-40}
JOBS=${JOBS:-1}
IND_LR=${IND_LR:-0.005}  # the acoustic GRU learns slowly at the default 2e-3
DOCS=${DOCS:-$EXP/bench}
FRESH=${FRESH:-}
SEEDS=${SEEDS:-1}
FRESH_DIR=${FRESH_DIR:-$EXP/fresh}
SEARCH=${SEARCH:-beam}
TRAIN_SEARCH=${TRAIN_SEARCH:-$SEARCH}
BEAM=${BEAM:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${LM+set}" ]; then
    LM=""
    [ -f "$ROOT/models/default/asr/lm.npz" ] && LM=models/default/asr/lm.npz
fi
PY=${HEED_PY:-$ROOT/.venv/bin/python}
HEED="$PY -m runtime.cli"
export OMP_NUM_THREADS=1
CACHE=$EXP/cache
mkdir -p "$EXP" "$DOCS"
cd "$ROOT"
[ -f "$ASR" ] || { echo "train_iqd_all: $ASR: no such checkpoint" >&2; exit 1; }
[ -f "$CORPUS/train.jsonl" ] || { echo "train_iqd_all: $CORPUS/train.jsonl not found" >&2; exit 1; }
[[ $SEEDS =~ ^[1-9][0-9]*$ ]] || { echo "train_iqd_all: SEEDS must be a positive number, not $SEEDS" >&2; exit 2; }
for f in $FRESH; do
    [[ $f =~ ^[0-9]+:[0-9]+$ ]] || { echo "train_iqd_all: FRESH words are SEED:SIZE, not $f" >&2; exit 2; }
done
for s in "$SEARCH" "$TRAIN_SEARCH"; do
    case $s in beam|greedy) ;; *) echo "train_iqd_all: SEARCH/TRAIN_SEARCH must be beam or greedy, not $s" >&2; exit 2;; esac
done
[ -z "$LM" ] || [ -f "$LM" ] || { echo "train_iqd_all: LM=$LM: no such file" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
RUNNING=0
spawn() {  # run "$@" in the background, at most JOBS at a time (a failed job ends the script: set -e)
    "$@" &
    RUNNING=$((RUNNING + 1))
    if [ "$RUNNING" -ge "$JOBS" ]; then wait -n; RUNNING=$((RUNNING - 1)); fi
}
drain() { while [ "$RUNNING" -gt 0 ]; do wait -n; RUNNING=$((RUNNING - 1)); done; }
search_args() {  # the iqd.replay flags of search $1
    if [ "$1" = beam ]; then
        echo "--search beam --beam $BEAM ${LM:+--lm $LM ${LM_SCALE:+--lm-scale $LM_SCALE} ${LM_BONUS:+--lm-bonus $LM_BONUS} ${LM_EOS_SCALE:+--lm-eos-scale $LM_EOS_SCALE}}"
    else
        echo "--search greedy"
    fi
}
EVAL_S=$(search_args "$SEARCH") TRAIN_S=$(search_args "$TRAIN_SEARCH")
if [ "$EVAL_S" != "$TRAIN_S" ]; then
    log "WARNING: training splits by $TRAIN_SEARCH search, dev/test by $SEARCH: the detectors train on other label histories than they are tested on"
    export HEED_IQD_MIXED_SEARCH=1
fi
log "search: dev/test: $EVAL_S; train: $TRAIN_S"

# 1. The frozen ASR over train (cropped around the speech), dev and test (whole), once for all detectors,
#    and over continuous recordings (pauses of background noise between utterances, the ASR streamed
#    with the endpointer as in the runtime) of the training utterances the cache left out and of dev:
#    the detectors train on both kinds and their policies are chosen on both (docs/iqd.md).
log "cache: train ($TRAIN_LIMIT), dev, test; recordings: train ($TRAIN_STREAMS), dev ($DEV_STREAMS)"
# shellcheck disable=SC2086  # the search flags split into words
run_cache() { "$PY" -m iqd.replay --asr "$ASR" --corpus "$CORPUS" --cache "$CACHE" "$@"; }
# shellcheck disable=SC2086
if [ "$JOBS" -ge 2 ]; then
    { run_cache --split train --limit "$TRAIN_LIMIT" --crop $TRAIN_S; run_cache --split dev --streams "$DEV_STREAMS" $EVAL_S; } &
    pid=$!
    run_cache --split dev $EVAL_S
    run_cache --split test $EVAL_S
    run_cache --split train --limit "$TRAIN_LIMIT" --streams "$TRAIN_STREAMS" $TRAIN_S
    wait $pid
else
    run_cache --split train --limit "$TRAIN_LIMIT" --crop $TRAIN_S
    run_cache --split dev $EVAL_S
    run_cache --split test $EVAL_S
    run_cache --split train --limit "$TRAIN_LIMIT" --streams "$TRAIN_STREAMS" $TRAIN_S
    run_cache --split dev --streams "$DEV_STREAMS" $EVAL_S
fi
if [ ! -f "$CORPUS/streams/test.jsonl" ]; then
    log "continuous test recordings: $N_STREAMS"
    $HEED corpus streams "$CORPUS" --split test --n "$N_STREAMS" --min-s 30 --max-s 60
fi

# 1b. Fresh corpora (FRESH): built and their training utterances cached, JOBS at a time; the
#     detectors below train on them instead of CACHE's train split.
EXTRA=()
if [ -n "$FRESH" ]; then
    log "fresh corpora: $FRESH -> $FRESH_DIR"
    fresh_one() {  # $1 seed, $2 size
        local dir=$FRESH_DIR/seed-$1
        if ! grep -q '"finished": true' "$dir/build.json" 2>/dev/null; then
            $HEED corpus build --out "$dir" --size "$2" --seed "$1" --workers 1 --quiet
        fi
        # shellcheck disable=SC2086
        "$PY" -m iqd.replay --asr "$ASR" --corpus "$dir" --cache "$dir/cache" --split train \
            --limit "$(wc -l < "$dir/train.jsonl")" --crop $TRAIN_S
    }
    for f in $FRESH; do
        spawn fresh_one "${f%%:*}" "${f##*:}"
        EXTRA+=(--extra-train "$FRESH_DIR/seed-${f%%:*}/cache")
    done
    drain
    EXTRA+=(--no-main-train)
fi

# 2. The detectors, each within MINUTES of training. The E2E and the cascade also on the recordings
#    (--streams); the independent detector on utterances only: on the recordings' long fbank rows it
#    got through 4 epochs in 5 minutes and stayed at chance (dev EER 49.8%, 37.5% without them).
#    The E2E's regularisation is TrainConfig's defaults (iqd/train.py: the weight average, docs/history/iqd.md);
#    the independent baseline stays as it was measured, without the weight average.
train() {  # $1 kind, $2 output folder under EXP, the rest passed on
    $HEED train iqd --kind "$1" --corpus "$CORPUS" --cache "$CACHE" --out "$EXP/$2" --max-minutes "$MINUTES" --quiet \
        ${EXTRA[@]+"${EXTRA[@]}"} "${@:3}"
}
# the jobs of this step, JOBS at a time: the E2E joint network of each seed, the independent detector
JOBLIST=("e2e e2e --streams")
for ((s = 1; s < SEEDS; s++)); do JOBLIST+=("e2e e2e-s$s --streams --seed $s"); done
JOBLIST+=("independent independent --lr $IND_LR --set ema_decay=0")
log "train: e2e (seeds 0-$((SEEDS - 1))), independent, cascade ($MINUTES min each)"
for job in "${JOBLIST[@]}"; do
    # shellcheck disable=SC2086  # a job's words are its arguments
    spawn train $job
done
drain
train cascade cascade --streams

# 3. The E2E detector fused with the cascade's classifier reading the label history as text (the
#    weight and the policy chosen on dev; nothing trained), exported for the runtime. With SEEDS > 1
#    the joint networks of all seeds are fused as their mean logit first (iqd/model.py: IqEnsemble).
log "fusion: e2e ($SEEDS seeds) + the cascade's text reader"
E2ES=(--e2e "$EXP/e2e")
for ((s = 1; s < SEEDS; s++)); do E2ES+=(--e2e "$EXP/e2e-s$s"); done
$HEED train iqd --kind fusion "${E2ES[@]}" --cascade "$EXP/cascade" --cache "$CACHE" --out "$EXP/fusion" --quiet
log "export fusion -> $EXP/iqd-e2e-export"
$HEED export iqd "$EXP/fusion" --out "$EXP/iqd-e2e-export" > "$EXP/iqd-e2e-export.log"

# 4. The benchmark (its tokens by the dev/test search: the test split cached above, the test recordings
#    decoded with it).
log "bench -> $DOCS"
# shellcheck disable=SC2086
"$PY" scripts/bench_iqd.py --asr "$ASR" --corpus "$CORPUS" --cache "$CACHE" --e2e "$EXP/e2e" --fusion "$EXP/fusion" $EVAL_S \
    --independent "$EXP/independent" --cascade "$EXP/cascade" --e2e-export "$EXP/iqd-e2e-export" --n-streams "$N_STREAMS" \
    --json "$DOCS/iqd_bench.json" --md "$DOCS/iqd_bench.md" --det-png "$DOCS/iqd_det.png" \
    --latency-png "$DOCS/iqd_latency_eer.png"
log "done"
