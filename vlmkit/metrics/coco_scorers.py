"""pycocoevalcap plumbing shared by the captioning metrics: one PTB tokenizer call per corpus, the scorers,
and an explicit check of whether SPICE can run (it needs Stanford CoreNLP 3.6.0 jars that pycocoevalcap would
otherwise try to download from nlp.stanford.edu on first use)."""
from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import Hashable, Optional

SCORER_NAMES = ("BLEU", "METEOR", "ROUGE_L", "CIDEr", "SPICE")


def ptb_tokenize(corpora: dict[str, dict[Hashable, list[str]]]) -> dict[str, dict[Hashable, list[str]]]:
    """Tokenise several ``{id: [captions]}`` corpora in ONE Java call (the JVM start dominates its cost)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    merged = {(name, key): [{"caption": c} for c in captions]
              for name, corpus in corpora.items() for key, captions in corpus.items()}
    with contextlib.redirect_stderr(io.StringIO()):
        tokenized = PTBTokenizer().tokenize(merged)
    out: dict[str, dict[Hashable, list[str]]] = {name: {} for name in corpora}
    for (name, key), captions in tokenized.items():
        out[name][key] = captions
    for name, corpus in corpora.items():  # keys whose captions were all empty lines come back missing
        for key in corpus:
            out[name].setdefault(key, [""])
    return out


def spice_unavailable_reason() -> Optional[str]:
    """None when SPICE can run offline here, else why not."""
    if shutil.which("java") is None:
        return "java is not on PATH"
    import pycocoevalcap.spice.spice as spice_module

    lib = Path(spice_module.__file__).parent / "lib"
    missing = [name for name in ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
               if not (lib / name).is_file()]
    if missing:
        return (f"SPICE needs Stanford CoreNLP jars {missing} in {lib}; pycocoevalcap downloads them from "
                f"nlp.stanford.edu, which vlmkit never does during evaluation")
    return None


def score_corpus(gts: dict, res: dict, scorers: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """Corpus scores of tokenised ``gts``/``res`` for the named scorers, plus {scorer: reason} not computed."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    scores: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name in scorers:
        if name == "BLEU":
            with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its ratio
                values, _ = Bleu(4).compute_score(gts, res, verbose=0)
            scores.update({f"BLEU_{n + 1}": float(v) for n, v in enumerate(values)})
        elif name == "METEOR":
            from pycocoevalcap.meteor.meteor import Meteor

            scores["METEOR"] = float(Meteor().compute_score(gts, res)[0])
        elif name == "ROUGE_L":
            scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
        elif name == "CIDEr":
            scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
        elif name == "SPICE":
            reason = spice_unavailable_reason()
            if reason is None:
                from pycocoevalcap.spice.spice import Spice

                scores["SPICE"] = float(Spice().compute_score(gts, res)[0])
            else:
                skipped["SPICE"] = reason
        else:
            raise ValueError(f"unknown caption scorer {name!r}; accepted: {', '.join(SCORER_NAMES)}")
    return scores, skipped
