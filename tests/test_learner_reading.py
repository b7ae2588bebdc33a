"""Read the executed notebooks of the default chain as a Japanese beginner would (issue 19, item 7).

- no English sentence in markdown or in what the cells print (stdout, stderr, results, table
  headers), outside code names, file names and quoted English; the few English names the guide
  itself uses are in :data:`ALLOWED`;
- no status word or verdict in English (:data:`ENGLISH_WORDS`); the guide is always チュートリアル;
- no hidden file of the run (``.nbutils.lock``, ``.04_evaluation.ipynb.*.tmp.ipynb``);
- every figure has a non-empty Japanese title, read from its PNG (``Title``, written by
  :class:`nbutils.plots.NotebookFigure`).

The checker itself is tested on hand cases first, so that it can fail.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import nbformat
import pytest

from nbutils.plots import png_title
from nbutils.run.pipeline import NOTEBOOKS

JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff01-\uff5e]")
#: English names the guide and Numerai use as names (the guide's section-3 rows, products,
#: libraries): read as names, not sentences.
ALLOWED = (
    "Corr with Example Preds",
    "Corr + MMC Sharpe",
    "Feature Neutral Mean",
    "Max Feature Exposure",
    "Validation Sharpe",
    "Validation Mean",
    "Validation SD",
    "Max Drawdown",
    "MMC Mean",
    "Open In Colab",
    "Open In Kaggle",
    "Upload predictions",
    "Session options",
    "Numerai Signals",
    "feature neutralization",
    "feature exposure",
    "Feature Exposure",
    "model upload",
    "MLP with KerasTuner Starter",  # an article title in the guide's list (03)
)
#: Words that form an English sentence when three or more English words stand together.
FUNCTION_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "by",
        "from",
        "and",
        "or",
        "not",
        "no",
        "this",
        "that",
        "it",
        "its",
        "they",
        "them",
        "their",
        "these",
        "those",
        "we",
        "you",
        "your",
        "our",
        "has",
        "have",
        "had",
        "do",
        "does",
        "did",
        "can",
        "will",
        "would",
        "should",
        "must",
        "here",
        "there",
        "than",
        "then",
        "when",
        "which",
        "what",
        "who",
        "how",
    ]
)
#: English verdicts and status words that must not reach the learner even alone.
ENGLISH_WORDS = frozenset(
    [
        "good",
        "fair",
        "bad",
        "ok",
        "below",
        "above",
        "passed",
        "failed",
        "skipped",
        "wrote",
        "saved",
        "agree",
        "agrees",
        "help",
        "reference",
        "verdict",
    ]
)
#: Tokens that are code: identifiers with _ or digits, calls, paths, dotted names, options.
CODE_TOKEN = re.compile(
    r"\S*(?:_|\(\)|=|/|\\|\w\.\w|[a-z][A-Z]|\d[A-Za-z]|[A-Za-z]\d|--|\[|\]|<|>|\{|\})\S*"
)
QUOTED = re.compile(r"`[^`]*`|\"[^\"\n]*\"|'[^'\n]*'|「[^」]*」|『[^』]*』|“[^”]*”")
URL = re.compile(r"https?://\S+|www\.\S+")
MD_LINK_TARGET = re.compile(r"\]\([^)]*\)")
#: A file name starting with a dot (with a letter in it: ".5" is a number), at a word start.
HIDDEN_FILE = re.compile(r"(?:^|[\s'\"/(\[,])(\.(?=[\w.-]*[A-Za-z_])\w[\w.-]*)")
PHRASE = re.compile(r"[A-Za-z]+(?:[ ,:;+\-&]+[A-Za-z]+)*")


def english_phrases(text: str) -> list[str]:
    """The English sentences and English status words in ``text`` (code and quotes removed)."""
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    text = re.sub(r"<[^>]+>", " ", text)  # HTML tags
    text = MD_LINK_TARGET.sub("] ", URL.sub(" ", text))
    text = QUOTED.sub(" ", text)
    for name in ALLOWED:
        text = text.replace(name, " ")
    text = CODE_TOKEN.sub(" ", text)
    found = []
    for line in text.splitlines():
        for phrase in PHRASE.findall(line):
            words = re.findall(r"[A-Za-z]+", phrase)
            lower = [w.lower() for w in words]
            sentence = len(words) >= 3 and any(w in FUNCTION_WORDS for w in lower)
            if sentence or any(w in ENGLISH_WORDS for w in lower):
                found.append(phrase.strip())
    return found


class _Headers(HTMLParser):
    """The column headers (``<th>`` inside ``<thead>``) of the HTML tables in an output."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self._in_head = self._in_th = False

    def handle_starttag(self, tag, attrs):
        self._in_head |= tag == "thead"
        if tag == "th" and self._in_head:
            self._in_th = True
            self.headers.append("")

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        if tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._in_th:
            self.headers[-1] += data


#: Column headers that are names, not English for the learner: pandas' own (describe) and
#: the data's and the guide's column names.
HEADER_NAMES = frozenset(  # spearman, pearson: method names; proportion: the parameter
    [
        "count",
        "mean",
        "std",
        "min",
        "max",
        "era",
        "target",
        "prediction",
        "id",
        "CORR",
        "MMC",
        "FNC",
        "Sharpe",
        "spearman",
        "pearson",
        "proportion",
    ]
)


def english_headers(html: str) -> list[str]:
    """Table column headers that are English words rather than Japanese or code names."""
    parser = _Headers()
    parser.feed(html)
    bad = []
    for header in (h.strip() for h in parser.headers):
        if not header or JAPANESE.search(header) or CODE_TOKEN.fullmatch(header):
            continue
        if header in HEADER_NAMES or header in ALLOWED or re.fullmatch(r"[\d.%\s-]+", header):
            continue
        bad.append(header)
    return bad


def readable_texts(nb) -> list[tuple[str, str]]:
    """``(where, text)`` for every markdown cell and every text output a learner reads."""
    texts = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            texts.append((f"cell {i} markdown", cell.source))
            continue
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                texts.append((f"cell {i} {out['name']}", out["text"]))
            elif out["output_type"] == "error":
                texts.append((f"cell {i} error", f"{out['ename']}: {out['evalue']}"))
            else:
                data = out.get("data", {})
                if "text/plain" in data and "text/html" not in data and "image/png" not in data:
                    texts.append((f"cell {i} result", data["text/plain"]))
    return texts


def html_outputs(nb) -> list[tuple[str, str]]:
    return [
        (f"cell {i} table", out["data"]["text/html"])
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "text/html" in out.get("data", {})
    ]


def figure_titles(nb) -> list[tuple[str, str]]:
    return [
        (f"cell {i}", png_title(base64.b64decode(out["data"]["image/png"])))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]


# -- the checker on hand cases -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("group stats change the validation mean CORR by +0.0012: they help", True),
        ("upload skipped: set upload = True", True),
        ("numerai_sharpe 0.9937 >= 1 (ddof=1) below", True),
        ("the tutorial's evaluate and nbutils agree", True),
        ("status: good", True),
        ("era ごとの CORR の平均と Sharpe（ddof=0）を比べます。", False),
        ('`per_era_corr(df, method="numerai")` を使います', False),
        ("チュートリアルの Corr with Example Preds は 0.5〜0.8 が目安", False),
        ("チュートリアルは「Corr only is not the whole story」と書いています", False),
        ("保存しました: /tmp/run/feature_spec.json", False),
        ("[チュートリアル](https://example.com/the-guide-is-here)", False),
        ("numerai_corr_sharpe_ddof0 = 1.0715", False),
    ],
)
def test_the_checker_finds_english_sentences_and_status_words(text, found):
    assert bool(english_phrases(text)) == found, english_phrases(text)


def test_the_checker_finds_english_headers_and_hidden_files():
    html = (
        "<table><thead><tr><th></th><th>tutorial guideline</th><th>値</th><th>verdict</th>"
        "<th>corr_mean</th><th>mean</th><th>25%</th></tr></thead>"
        "<tbody><tr><th>spearman rank</th><td>1</td></tr></tbody></table>"
    )
    assert english_headers(html) == ["tutorial guideline", "verdict"]
    listing = "['.04_evaluation.ipynb.5597.tmp.ipynb', '.nbutils.lock', 'data.json', 0.5]"
    assert HIDDEN_FILE.findall(listing) == [".04_evaluation.ipynb.5597.tmp.ipynb", ".nbutils.lock"]
    assert HIDDEN_FILE.findall("pd.DataFrame(x).round(4) 0.25 x.5") == []


# -- the default chain, read ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def executed(default_chain):
    run, _ = default_chain
    return {name: nbformat.read(run / name, as_version=4) for name in NOTEBOOKS}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_english_sentence_reaches_the_learner(executed, name):
    nb = executed[name]
    problems = [
        f"{where}: {phrase!r}"
        for where, text in readable_texts(nb)
        for phrase in english_phrases(text)
    ]
    problems += [
        f"{where}: header {header!r}"
        for where, html in html_outputs(nb)
        for header in english_headers(html)
    ]
    assert not problems, f"{name} shows English to the learner:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_hidden_file_of_the_run_is_shown(executed, name):
    shown = [
        f"{where}: {hidden}"
        for where, text in readable_texts(executed[name])
        if "markdown" not in where
        for hidden in HIDDEN_FILE.findall(text)
    ]
    assert not shown, f"{name} lists hidden files: {shown}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_figure_has_a_japanese_title(executed, name):
    titles = figure_titles(executed[name])
    missing = [f"{where}: {title!r}" for where, title in titles if not JAPANESE.search(title)]
    assert not missing, (
        f"{name}: figures without a Japanese title in their PNG (draw them as "
        f"nbutils.plots.NotebookFigure with a Japanese title): {missing}"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_guide_is_always_called_the_tutorial(executed, name):
    """Issue 19: the guide was called both ガイド and チュートリアル."""
    defining = "ガイド（以下「チュートリアル」）"  # the one sentence that names it so
    called = [
        where
        for where, text in readable_texts(executed[name])
        if "ガイド" in text.replace(defining, "")
    ]
    assert not called, f"{name} calls the guide ガイド (say チュートリアル): {called}"
