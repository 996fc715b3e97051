#!/usr/bin/env python
"""What the words alone allow an intended-query detector: the EER of a text classifier on the
*reference* transcripts of the test split, on their first k words and whole, next to the
cascade on the ASR's final transcripts (docs/history/iqd.md, "What bounds the EER").

    OMP_NUM_THREADS=1 .venv/bin/python scripts/iqd_text_ceiling.py --corpus data/c14k \
        --cascade exp/iqd11/cascade --cache exp/iqd11/cache

The prefix classifier is the cascade's model (`iqd.model.TextClassifier`, hashed words, word
bigrams and character trigrams, logistic regression) trained here on every word prefix of the
training split's reference texts (no ASR output), three epochs, seed 0. The whole-text rows use
the cascade's own classifier (--cascade), on the reference and on the cached ASR transcripts
(--cache, its test split).
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

from runtime.manifest import read_manifest
from runtime.detection_metrics import eer
from iqd.model import IqdConfig, TextClassifier
from iqd.train import load_detector


def prefix_classifier(corpus: Path, epochs: int = 3, seed: int = 0) -> TextClassifier:
    texts, labels = [], []
    for u in read_manifest(corpus / "train.jsonl"):
        if u.directed is None:
            continue
        words = u.text.split()
        for k in range(1, len(words) + 1):
            texts.append(" ".join(words[:k]))
            labels.append(float(u.directed))
    model = TextClassifier(IqdConfig(kind="cascade"))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    y = torch.tensor(labels)
    rng = random.Random(seed)
    for _ in range(epochs):
        order = list(range(len(texts)))
        rng.shuffle(order)
        for s in range(0, len(order), 512):
            idx = order[s : s + 512]
            logits = model(*model.encode([texts[i] for i in idx]))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, type=Path)
    ap.add_argument("--cascade", required=True, type=Path, help="heed train iqd --kind cascade folder")
    ap.add_argument("--cache", type=Path, help="IQD cache whose test split holds the ASR's transcripts")
    ap.add_argument("--words", default="1,2,3,4,6")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    test = [u for u in read_manifest(args.corpus / "test.jsonl") if u.directed is not None]
    labels = [bool(u.directed) for u in test]
    prefix = prefix_classifier(args.corpus)
    rows = []
    for k in (int(x) for x in args.words.split(",")):
        s = prefix.predict([" ".join(u.text.split()[:k]) for u in test]).numpy()
        rows.append((f"reference, first {k} word{'s' if k > 1 else ''} (prefix classifier)", eer(s, labels)))
    cascade, _ = load_detector(args.cascade / "model.pt")
    rows.append(("reference, whole (the cascade's classifier)", eer(cascade.predict([u.text for u in test]).numpy(), labels)))
    if args.cache:
        from iqd.cache import IqdCache

        cached = IqdCache(args.cache, "test")
        s = cascade.predict([u.hyp for u in cached.utts]).numpy()
        rows.append(("the ASR's final transcript (the cascade)", eer(s, [u.directed for u in cached.utts])))
    print(f"test split: {len(test)} utterances, {sum(labels)} directed\n")
    print("| text read | EER |\n|---|---:|")
    for name, e in rows:
        print(f"| {name} | {100 * e:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
