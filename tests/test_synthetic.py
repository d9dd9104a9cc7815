"""Synthetic pretraining documents (longlora.synthetic): answerable from their context only,
and free of the passkey test's wording."""

import re

import numpy as np

from longlora import synthetic
from longlora.evaluation import FILLER_SENTENCES, KEY_LINE, QUESTION, TASK

FILLER = ["She walked to the window.", "Nothing was said for a while.", "It rained all day."]


def question_start(question: str) -> str:
    return question.split("{s}")[0]


def test_every_query_repeats_the_number_of_its_fact():
    """Parse each document with its relation's wording: every subject has one number, stated
    once as a fact before the queries, and every query asks a stated subject."""
    rng = np.random.default_rng(1)
    for _ in range(300):
        text = synthetic.recall_text(rng, FILLER, num_facts=5, num_queries=3, num_filler=int(rng.integers(0, 9)))
        statement, question = next((st, q) for st, q in synthetic.RELATIONS if question_start(q) in text)
        pattern = re.escape(statement).replace(re.escape("{s}"), r"(\w+ \w+)") + r" (\d+)\."
        stated = re.findall(pattern, text, flags=re.IGNORECASE)
        numbers = {}
        for subject, number in stated:
            numbers.setdefault(subject.lower(), set()).add(number)
        assert all(len(n) == 1 for n in numbers.values()), text
        facts = re.findall(pattern, text[:text.index(question_start(question))], flags=re.IGNORECASE)
        assert len(facts) == 5 and len(stated) == 5 + 3  # every query ends with its fact restated


def test_fact_numbers_have_every_length_up_to_most_digits():
    """Each count of digits from 1 to most_digits about equally often, none longer."""
    rng = np.random.default_rng(4)
    for most in (5, 8):
        lengths = np.array([len(str(synthetic.random_number(rng, most))) for _ in range(4000)])
        counts = np.bincount(lengths, minlength=most + 2)
        assert counts[0] == 0 and counts[most + 1:].sum() == 0
        assert all(abs(c / 4000 - 1 / most) < 0.03 for c in counts[1:most + 1]), counts
    text = synthetic.recall_text(rng, FILLER, num_facts=6, num_queries=1, num_filler=3, most_digits=8)
    assert max(len(n) for n in re.findall(r"\d+", text)) <= 8


def test_copy_documents_repeat_one_span():
    rng = np.random.default_rng(2)
    for _ in range(50):
        doc, stated = synthetic.copy_document(rng, 4096, 256)
        period = next(p for p in range(8, 129) if np.array_equal(doc[p:], doc[:-p]))
        assert len(doc) == 256 and doc.min() >= 4 and period == stated <= 128


def test_copy_periods_reach_half_the_block():
    """Look-back distances up to half the window are trained, not only short ones."""
    rng = np.random.default_rng(5)
    periods = [synthetic.copy_document(rng, 4096, 256)[1] for _ in range(400)]
    assert min(periods) >= 8 and max(periods) == 128 and np.mean(np.array(periods) > 64) > 0.4


def test_copy_periods_reach_the_longest_asked():
    rng = np.random.default_rng(6)
    documents = [synthetic.copy_document(rng, 4096, 256, longest=224) for _ in range(400)]
    periods = np.array([period for _, period in documents])
    assert periods.max() == 224 and np.mean(periods > 128) > 0.3
    assert all(np.array_equal(doc[period:], doc[:-period]) for doc, period in documents)


def test_recall_facts_spread_over_the_filler():
    """Every filler sentence is used once in place, and facts stand anywhere among them: first
    (a query's longest look-back) as well as last."""
    rng = np.random.default_rng(6)
    filler = [f"Sentence number {chr(97 + i)} ends here." for i in range(26)]
    first = last = 0
    for _ in range(200):
        text = synthetic.recall_text(rng, filler, num_facts=1, num_queries=1, num_filler=10)
        sentences = re.split(r"(?<=\.) ", text)
        assert sum(s in filler for s in sentences) == 10 and len(sentences) == 12
        fact_at = next(i for i, s in enumerate(sentences) if s not in filler)
        first, last = first + (fact_at == 0), last + (fact_at == 10)
    assert first > 5 and last > 5


def test_a_cycled_filler_says_its_sentences_over_and_over_in_order():
    rng = np.random.default_rng(8)
    filler = [f"Sentence number {chr(97 + i)} ends here." for i in range(26)]
    for cycle in (2, 3, 5):
        text = synthetic.recall_text(rng, filler, num_facts=2, num_queries=1, num_filler=12, cycle=cycle)
        said = [s for s in re.split(r"(?<=\.) ", text) if s in filler]
        assert len(said) == 12 and said == [said[i % cycle] for i in range(12)] and len(set(said)) <= cycle


def test_a_cycled_filler_holds_the_relations_last_word_where_it_can():
    """The query's last word must recur in the filler followed by other words (colliding keys)."""
    rng = np.random.default_rng(9)
    filler = FILLER + ["The river is cold.", "He waited with care.", "The sign reads north."]
    for _ in range(100):
        text = synthetic.recall_text(rng, filler, num_facts=1, num_queries=1, num_filler=6, cycle=2)
        statement = next(st for st, q in synthetic.RELATIONS if question_start(q) in text)
        said = [s for s in re.split(r"(?<=[.?]) ", text) if s in filler]
        assert all(f" {statement.split()[-1]} " in f" {s} " for s in said), text


def test_repeats_recur_verbatim_and_far_back():
    """A repeat is a whole filler sentence said again: 8 drawn + 3 repeats = 11 sentences, at
    least 3 of them a sentence already said; some repeats come many sentences after the first."""
    rng = np.random.default_rng(7)
    filler = [f"Sentence number {chr(97 + i)} ends here." for i in range(26)]
    farthest = 0
    for _ in range(200):
        sentences = re.split(r"(?<=\.) ", synthetic.repeat_text(rng, filler, num_filler=8, num_repeats=3))
        assert len(sentences) == 11 and all(s in filler for s in sentences)
        assert len(sentences) - len(set(sentences)) >= 3
        farthest = max(farthest, max(len(sentences) - 1 - sentences[::-1].index(s) - sentences.index(s)
                                     for s in sentences))
    assert farthest >= 8


def test_small_alphabet_copy_documents_need_more_than_the_last_token():
    rng = np.random.default_rng(4)
    ambiguous = 0
    for _ in range(50):
        doc, period = synthetic.copy_document(rng, 4096, 256, alphabet=6)
        assert np.array_equal(doc[period:], doc[:-period]) and len(set(doc[:period].tolist())) <= 6
        span = doc[:period].tolist()
        followers = {}
        for i, token in enumerate(span):  # what follows each token's occurrences within one period
            followers.setdefault(token, set()).add(span[(i + 1) % period])
        ambiguous += any(len(f) > 1 for f in followers.values())
    assert ambiguous >= 45  # the last token alone rarely tells the next one


def test_motif_answers_follow_only_from_their_two_token_key():
    """Read each motif document from its ids alone: the targets are exactly the tokens after the
    queries' "A T", each the continuation of the one earlier "A T"; T alone recurs all through
    the block followed by other tokens, so a one-token look-back does not find the answer."""
    rng = np.random.default_rng(5)
    distances = []
    for _ in range(200):
        ids, labels = synthetic.motif_document(rng, 4096, 256)
        ids, labels = ids.tolist(), labels.tolist()
        assert len(ids) == len(labels) == 256 and min(ids) >= 4
        targets = [i for i, label in enumerate(labels) if label != -100]
        assert targets and all(labels[i] == ids[i] for i in targets)
        first_target = targets[0]
        relation = ids[first_target - 1]
        assert ids.count(relation) >= 256 // 12  # T every 5-10 tokens of the motif
        followers = {ids[i + 1] for i in range(first_target - 2) if ids[i] == relation}
        assert len(followers) >= 2
        for i in targets:
            if labels[i - 1] != -100:
                continue  # a later token of the same answer
            prefix = ids[i - 2]
            earlier = [j for j in range(i - 2) if ids[j] == prefix and ids[j + 1] == relation]
            assert len(earlier) == 1 and ids.count(prefix) == 2  # the keyed line and its query
            answer = [ids[k] for k in range(i, len(ids)) if labels[k] != -100 and all(
                labels[m] != -100 for m in range(i, k + 1))]
            assert ids[earlier[0] + 2:earlier[0] + 2 + len(answer)] == answer
            distances.append(i - earlier[0])
    assert max(distances) > 200 and min(distances) < 100  # keys from near to a whole block back
    for length in (16, 23, 64):  # the shortest curriculum blocks fit their keyed lines and queries
        assert all(len(synthetic.motif_document(rng, 4096, length)[0]) == length for _ in range(300))


def test_no_passkey_wording_in_synthetic_documents():
    rng = np.random.default_rng(3)
    texts = [synthetic.recall_text(rng, FILLER, 6, 3, num_filler=4) for _ in range(500)]
    assert not any(synthetic.contains_passkey_text(t) for t in texts)
    for line in (TASK, KEY_LINE.format(key=1), QUESTION, FILLER_SENTENCES[0]):
        assert synthetic.contains_passkey_text(line)  # the check would catch the test's own lines
