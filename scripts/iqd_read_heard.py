"""Make an exported IQD's text reader read the heard partials (issue 25 item 4), chosen on dev.

The detector's joint network is unchanged; its text classifier (`text.npz`, trained on the
streaming transducer's transcripts) reads instead the segment's heard partial, Whisper's reading
that the pipeline already makes for the partials (`text.reads: "heard"` in iqd.json; without heard
partials, `--stream-partials` or no second pass, the detector reads the pieces again). The fusion
weight and the decision policy are chosen on the dev caches exactly as the recipe chooses them
(`iqd.fusion.choose_weight`: each weight, then `choose_policy` within the median-latency budget,
the lowest dev EER), beside the same search with the pieces for comparison. The caches come from
`python -m iqd.replay --bundle ... --heard` (the bundle's own int8 transducer, beam search and LM,
and its heard partials, as the pipeline runs them; docs/iqd_student.md, "Reproduce").

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python scripts/iqd_read_heard.py --iqd models/default/iqd \\
        --cache exp/iqdH/cache-t --splits dev,dev-streams --budget 1.0 --write
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from iqd.bench import onnx_posteriors
from iqd.cache import IqdCache
from iqd.fusion import WEIGHTS, cache_pieces, choose_weight, heard_of
from iqd.train import tracks_of
from runtime.iqd import IqdModel
from runtime.iqd_policy import DecisionPolicy


def dev_parts(iqd_dir: Path, cache_dir: str, splits: list[str], policy: DecisionPolicy):
    """The joint network's tracks over the dev splits, their label histories, pieces and heard partials."""
    tracks, histories, heard, pieces = [], [], [], None
    for split in splits:
        cache = IqdCache(cache_dir, split)
        tracks += tracks_of(cache, onnx_posteriors(iqd_dir, cache), policy)
        histories += [(u.tokens, u.token_frames) for u in cache.utts]
        heard += heard_of(cache)
        pieces = pieces or cache_pieces(cache)
    return tracks, histories, pieces, heard


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iqd", required=True, help="a `heed export iqd` folder whose text reader reads pieces")
    p.add_argument("--cache", required=True, help="IQD caches filled with --heard by the bundle the detector is in")
    p.add_argument("--splits", default="dev,dev-streams", help="the dev splits the choice is made on")
    p.add_argument("--budget", type=float, default=1.0, help="median decision latency budget on dev (s)")
    p.add_argument("--write", action="store_true", help="write text.reads, weight, policy, theta into iqd.json")
    a = p.parse_args(argv)
    folder = Path(a.iqd)
    model = IqdModel.from_dir(folder)
    if model.text is None:
        print(f"{folder}/iqd.json: the detector has no text reader", file=sys.stderr)
        return 1
    base = DecisionPolicy.from_dict(model.manifest["policy"])
    try:
        tracks, histories, pieces, heard = dev_parts(folder, a.cache, a.splits.split(","), base)
    except (OSError, ValueError) as e:
        print(f"{a.cache}: {e}", file=sys.stderr)
        return 1
    chosen = {}
    for reads, h in (("pieces", None), ("heard", heard)):
        found = choose_weight(tracks, histories, model.text, pieces, a.budget, base, WEIGHTS, False, h)
        if found is None:
            print(f"{reads}: no weight decides within a dev median of {a.budget} s", file=sys.stderr)
            return 1
        text, policy, theta, _, rows = found
        best = next(r for r in rows if r["weight"] == text.weight)  # the row choose_weight chose
        chosen[reads] = {"weight": text.weight, "policy": policy.to_dict(), "theta": theta,
                         "dev": {"eer": best["eer"], "median_s": best["median_s"]}}
        print(f"text reads {reads}: weight {text.weight}, theta {theta:.2f}, dev EER {100 * best['eer']:.2f}%, "
              f"median {best['median_s']:.2f} s  (" + ", ".join(
                  f"w={r['weight']}: {100 * r['eer']:.1f}%/{r['median_s']:.2f}s" for r in rows) + ")")
    if a.write:
        path = folder / "iqd.json"
        m = json.loads(path.read_text())
        c = chosen["heard"]
        m["text"].update(reads="heard", weight=c["weight"])
        m["policy"], m["theta"] = c["policy"], c["theta"]
        m["text"]["chosen_on"] = {"cache": a.cache, "splits": a.splits, "max_median_latency_s": a.budget,
                                  "dev_eer": round(c["dev"]["eer"], 4), "dev_median_s": c["dev"]["median_s"],
                                  "dev_eer_reading_pieces": round(chosen["pieces"]["dev"]["eer"], 4),
                                  "dev_median_s_reading_pieces": chosen["pieces"]["dev"]["median_s"]}
        path.write_text(json.dumps(m, indent=1) + "\n")
        IqdModel.from_dir(folder)  # it loads back
        print(f"wrote {path}")
        bundle_json = folder.parent / "bundle.json"  # a detector installed in a bundle: its copy of the policy too
        if bundle_json.is_file():
            b = json.loads(bundle_json.read_text())
            if (folder.parent / b.get("iqd", {}).get("dir", "")).resolve() == folder.resolve():
                b["iqd"].update(policy=m["policy"], theta=m["theta"])
                bundle_json.write_text(json.dumps(b, indent=1) + "\n")
                print(f"wrote {bundle_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
