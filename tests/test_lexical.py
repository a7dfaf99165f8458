"""Language analysis for BM25 and the fusion/collapsing of ranked sentences."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import IndexCorruptError
from indexer.lexical import LexicalScores, Postings, analyze, bm25
from indexer.ranking import Fusion, Scored, collapse, fuse


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Ärger über die Straße", "Aerger ueber die Strasse"),  # umlaut and ß spellings
        ("die Häuser", "Haus"),  # plural and umlaut reduce to one stem
        ("Verbündete", "verbündeten"),  # case and inflection
        ("KÖLN", "Koeln"),  # case, and oe for ö
    ],
)
def test_german_spellings_meet(a: str, b: str) -> None:
    assert analyze(a, "de") == analyze(b, "de")


@pytest.mark.parametrize(
    ("a", "b"),
    [("The houses", "house"), ("running quickly", "runs quick"), ("Civilians", "civilian")],
)
def test_english_inflections_meet(a: str, b: str) -> None:
    assert analyze(a, "en") == analyze(b, "en")


def test_the_stop_words_are_those_of_bm25s() -> None:
    from bm25s import stopwords as theirs

    from indexer import stopwords as ours

    assert tuple(theirs.STOPWORDS_GERMAN) == ours.GERMAN
    assert tuple(theirs.STOPWORDS_EN) == ours.ENGLISH


def test_stop_words_are_dropped() -> None:
    assert analyze("der die das und über", "de") == []
    assert analyze("the and of", "en") == []


def test_unknown_language_falls_back_to_english_rules() -> None:
    assert analyze("houses", "xx") == analyze("houses", "en")


def _postings(texts: list[str], language: str = "de") -> Postings:
    return Postings.build([analyze(t, language) for t in texts])


def _bm25(
    parts: list[tuple[Postings, np.ndarray]], query: str, language: str = "de"
) -> LexicalScores:
    return bm25(parts, analyze(query, language))


def _everything(postings: Postings) -> np.ndarray:
    return np.ones(len(postings.lengths), dtype=bool)


def test_bm25_scores_and_round_trip(tmp_path: Path) -> None:
    postings = _postings(
        ["Der Rhein fließt durch Köln.", "Pasta in salted water.", "Köln liegt am Rhein, Köln!"]
    )
    scores = _bm25([(postings, _everything(postings))], "Köln").dense()[0]
    assert scores[1] == 0 and scores[2] > scores[0] > 0
    assert (
        0.5
        < _bm25([(postings, _everything(postings))], "Köln").normalised()[0].dense().max()
        <= 1.0
    )
    assert not _bm25([(postings, _everything(postings))], "Zebra").dense()[0].any()
    postings.save(tmp_path)
    again = Postings.load(tmp_path)
    np.testing.assert_allclose(_bm25([(again, _everything(again))], "Köln").dense()[0], scores)


def test_bm25_agrees_with_bm25s_on_one_segment() -> None:
    """Oracle: bm25s (Lucene variant) on the same analysed corpus gives the same scores."""
    import bm25s

    rng = random.Random(3)
    words = [f"wort{i}" for i in range(60)]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(300)]
    texts += ["", "der die das"]  # sentences with no term at all
    analysed = [analyze(t, "de") for t in texts]
    retriever = bm25s.BM25()
    retriever.index([a or ["\x00empty"] for a in analysed], show_progress=False)
    postings = Postings.build(analysed)
    for _ in range(50):
        query = analyze(" ".join(rng.choices(words, k=rng.randint(1, 4))), "de")
        known = [t for t in query if t in retriever.vocab_dict]
        ours = bm25([(postings, _everything(postings))], query).dense()[0]
        theirs = retriever.get_scores(known) if known else np.zeros(len(texts))
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_statistics_are_the_collections_not_a_segments() -> None:
    """Split into segments, with deleted rows, the scores equal those of the live rows alone."""
    rng = random.Random(5)
    words = [f"wort{i}" for i in range(40)]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 10))) for _ in range(200)]
    alive = [rng.random() > 0.3 for _ in texts]
    whole = _postings([t for t, keep in zip(texts, alive, strict=True) if keep])
    parts = []
    for begin, end in [(0, 50), (50, 51), (51, 140), (140, 200)]:
        postings = _postings(texts[begin:end])
        parts.append((postings, np.array(alive[begin:end], dtype=bool)))
    for query in ("wort1 wort2", "wort3 wort3 wort7", "wort39 zebra"):
        split = _bm25(parts, query)
        alone = _bm25([(whole, _everything(whole))], query)
        live = np.concatenate([s[m] for s, (_, m) in zip(split.dense(), parts, strict=True)])
        np.testing.assert_allclose(live, alone.dense()[0], rtol=1e-5, atol=1e-6)
        assert split.full == pytest.approx(alone.full)
        # deleted rows score nothing
        assert all(not s[~m].any() for s, (_, m) in zip(split.dense(), parts, strict=True))


def test_merged_postings_equal_postings_built_at_once() -> None:
    texts = ["Köln am Rhein", "Pasta und Wasser", "Rhein und Köln und Bonn", "Bonn", "leer"]
    a, b = _postings(texts[:2]), _postings(texts[2:])
    keep_a, keep_b = np.array([True, False]), np.array([True, True, False])
    merged = Postings.merge([(a, keep_a), (b, keep_b)])
    direct = _postings([texts[0], texts[2], texts[3]])
    for name in ("terms", "starts", "rows", "counts", "lengths"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(direct, name))


def test_a_common_word_alone_is_weak_lexical_evidence() -> None:
    # the seed article's failure mode: every sentence mentions Ukraine, and the question's
    # distinctive words are not in the index, so matching "Ukraine" must not count as a full match
    postings = _postings(
        [
            "Die Ukraine bittet um Waffen.",
            "Russland greift die Ukraine an.",
            "Lammy kündigte Hilfe von 600 Millionen Pfund an.",
            "Die Ukraine will Ziele in Russland treffen.",
        ]
    )
    every = [(postings, _everything(postings))]
    weak = _bm25(every, "Wie viel Geld gibt Großbritannien der Ukraine?").normalised()[0].dense()
    assert 0 < weak.max() < 0.3
    strong = _bm25(every, "Millionen Pfund Hilfe").normalised()[0].dense()
    assert strong.argmax() == 2 and strong.max() > 0.7  # all three words, a longer sentence
    ranked = _bm25(every, "Ukraine Russland")
    assert (
        ranked.normalised()[0].dense().argmax() == ranked.dense()[0].argmax()
    )  # order is BM25's own


def test_damaged_postings_are_reported_and_missing_ones_retried(tmp_path: Path) -> None:
    _postings(["Köln am Rhein"]).save(tmp_path)
    (tmp_path / "postings-rows.npy").write_bytes(b"not an array")
    with pytest.raises(IndexCorruptError, match="lexical index"):
        Postings.load(tmp_path)
    # gone (a commit pruned it after the reader read CURRENT): the reader looks again
    (tmp_path / "postings-rows.npy").unlink()
    with pytest.raises(FileNotFoundError):
        Postings.load(tmp_path)


def test_hybrid_adds_lexical_only_within_a_language() -> None:
    candidates = np.array([7, 8])
    dense = np.array([0.80, 0.79])
    lexical = np.array([0.0, 1.0])
    fusion = Fusion(lexical_weight=0.05, cross_language_weight=0.0)
    same = fuse("hybrid", candidates, dense, lexical, np.array([True, True]), fusion)
    assert [s.address for s in same] == [8, 7]
    assert same[0].score == pytest.approx(0.84)
    cross = fuse("hybrid", candidates, dense, lexical, np.array([False, False]), fusion)
    assert [s.address for s in cross] == [7, 8]


def test_bm25_mode_drops_candidates_without_a_match() -> None:
    ranked = fuse("bm25", np.array([1, 2]), None, np.array([0.0, 0.5]), np.array([1, 1]), Fusion())
    assert [s.address for s in ranked] == [2]


def test_collapse_keeps_the_best_sentence_per_paragraph() -> None:
    paragraphs = [("a", 0), ("a", 0), ("a", 1), ("b", 0)]  # of sentences 0, 1, 2, 3
    ranked = [Scored(address, 1.0 - address / 10, None, None) for address in (1, 0, 3, 2)]
    assert [s.address for s in collapse(ranked, paragraphs.__getitem__, k=10)] == [1, 3, 2]
    assert [s.address for s in collapse(ranked, paragraphs.__getitem__, k=2)] == [1, 3]


def test_a_calibration_maps_scores_to_probabilities_for_its_own_model_only() -> None:
    from indexer.ranking import Calibration, calibration

    weights = {"hybrid": np.array([-10.0, 12.0, -20.0, 0.0, 0.0])}
    fit = Calibration("m", (0.2, 0.0), weights, centring="language")
    near = fit.probability("m", "language", Fusion(), "hybrid", 0.9, 0.9, True)
    assert near is not None and near == pytest.approx(1 / (1 + math.exp(-(-10 + 12 * 0.9))))
    below = fit.probability(
        "m", "language", Fusion(), "hybrid", 0.8, 0.9, True
    )  # far below the first hit
    assert below is not None and below < near
    assert fit.probability("other", "language", Fusion(), "hybrid", 0.9, 0.9, True) is None
    assert fit.probability("m", "language", Fusion(0.3), "hybrid", 0.9, 0.9, True) is None
    assert fit.probability("m", "language", Fusion(), "bm25", 0.9, 0.9, True) is None
    assert fit.probability("m", "none", Fusion(), "hybrid", 0.9, 0.9, True) is None
    shipped = calibration()  # the fit for the default model, in the package
    assert shipped is not None and shipped.model == "multilingual-e5-small"
    assert set(shipped.modes) == {"hybrid", "dense"}


@pytest.mark.parametrize("deleted_share", [0.0, 0.3])
def test_summing_over_matched_rows_equals_summing_over_every_row(
    monkeypatch: pytest.MonkeyPatch, deleted_share: float
) -> None:
    """Scores are summed over just the matched rows, or in one array of every row when a
    query's terms match many; both give the same scores to the last bit."""
    import indexer.lexical as lexical

    rng = random.Random(11)
    words = [f"wort{i}" for i in range(30)]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(400)]
    parts: list[tuple[Postings, np.ndarray | None]] = []
    for begin, end in [(0, 150), (150, 160), (160, 400)]:
        postings = _postings(texts[begin:end])
        live = np.array([rng.random() >= deleted_share for _ in range(end - begin)])
        parts.append((postings, live if deleted_share else None))
    for _ in range(40):
        query = analyze(" ".join(rng.choices([*words, "zebra"], k=rng.randint(1, 5))), "de")
        monkeypatch.setattr(lexical, "DENSE_SHARE", 0.0)  # always one array of every row
        every = bm25(parts, query)
        monkeypatch.setattr(lexical, "DENSE_SHARE", float("inf"))  # always the matched rows
        matched = bm25(parts, query)
        for a, b in zip(every.scores, matched.scores, strict=True):
            np.testing.assert_array_equal(a.rows, b.rows)
            np.testing.assert_array_equal(a.values, b.values)
            assert (a.values > 0).all()


@pytest.mark.parametrize("deleted_share", [0.0, 0.3])
def test_pruned_matches_hold_every_sentence_that_can_rank_with_its_exact_score(
    deleted_share: float,
) -> None:
    """Oracle for MaxScore pruning: against every match scored, the pruned matches hold all
    allowed sentences scoring at least (1 - margin) times the depth-th best, no others than
    allowed ones, each with the same score to the last bit; and the best score is the best of
    all. Zipf-distributed words, so that rare and common query words meet and pruning works."""
    rng = random.Random(17)
    words = [f"wort{i}" for i in range(300)]
    weights = [1 / (i + 1) for i in range(300)]
    texts = [" ".join(rng.choices(words, weights, k=rng.randint(3, 15))) for _ in range(3000)]
    parts: list[tuple[Postings, np.ndarray | None]] = []
    for begin, end in [(0, 1000), (1000, 1100), (1100, 3000)]:
        live = np.array([rng.random() >= deleted_share for _ in range(end - begin)])
        parts.append((_postings(texts[begin:end]), live if deleted_share else None))
    pruned = 0
    for _ in range(300):
        query = analyze(" ".join(rng.choices(words, k=rng.randint(1, 4))), "de")
        depth, margin = rng.choice([1, 5, 20]), rng.choice([0.0, 1e-6, 0.1])
        allowed = None
        if rng.random() < 0.3:
            allowed = [
                (np.ones(len(p.lengths), bool) if live is None else live)
                & (np.arange(len(p.lengths)) % 3 != 0)
                for p, live in parts
            ]
        every = bm25(parts, query).scores
        scored = bm25(parts, query)
        got = scored.matches(depth, allowed, margin)
        masks = allowed or [np.ones(e.size, bool) for e in every]
        candidates = np.concatenate(
            [e.values[m[e.rows]] for e, m in zip(every, masks, strict=True)]
        )
        best_of_all = max((float(e.values.max(initial=0)) for e in every), default=0.0)
        assert scored.best == best_of_all
        if not len(candidates):
            assert not any(len(g.rows) for g in got)
            continue
        floor = float(np.sort(candidates)[::-1][min(depth, len(candidates)) - 1]) * (1 - margin)
        for g, e, mask in zip(got, every, masks, strict=True):
            np.testing.assert_array_equal(g.values, e.dense()[g.rows])
            assert mask[g.rows].all() and (g.values > 0).all()
            wanted = e.rows[(e.values >= floor) & mask[e.rows]]
            assert np.isin(wanted, g.rows).all()
        pruned += sum(len(g.rows) for g in got) < len(candidates)
    assert pruned >= 50  # the pruning was exercised (67 of 300 here), not only the fallback


def _counted_row_by_row(analysed: list[list[str]]) -> Postings:
    """Postings.build as it was written first: a Counter per row (the oracle)."""
    from collections import Counter

    from indexer.lexical import EMPTY, term_key

    keys, rows, counts = [], [], []
    lengths = np.empty(len(analysed), dtype=np.int32)
    for row, terms in enumerate(analysed):
        counted = Counter(terms or [EMPTY])
        lengths[row] = sum(counted.values())
        for term, count in counted.items():
            keys.append(term_key(term))
            rows.append(row)
            counts.append(count)
    return Postings._from_triples(
        np.array(keys, dtype=np.uint64),
        np.array(rows, dtype=np.int32),
        np.array(counts, dtype=np.int32),
        lengths,
    )


@pytest.mark.parametrize("rows", [0, 1, 7, 500])
def test_postings_are_built_as_counting_each_row_builds_them(rows: int) -> None:
    rng = random.Random(rows)
    words = [f"w{i}" for i in range(40)]
    analysed = [rng.choices(words, k=rng.choice([0, 1, 3, 12, 30])) for _ in range(rows)]
    built, expected = Postings.build(analysed), _counted_row_by_row(analysed)
    for field in ("terms", "starts", "rows", "counts", "lengths"):
        np.testing.assert_array_equal(getattr(built, field), getattr(expected, field))
        assert getattr(built, field).dtype == getattr(expected, field).dtype
