"""The memorization report as a reader sees it: loops read as loops, repeats are set apart from
copies in the highlight, and an unknown prompt word is given its real cause."""

from __future__ import annotations

from types import SimpleNamespace

from lstm_core.generate import SamplingConfig
from lstm_core.memorization import analyze
from lstm_core.vocab import Vocabulary
from training.config import TrainConfig
from ui.generate_tab import unknown_words
from ui.loss_tab import samples_markdown
from ui.report import REPEATS, headline, highlight, run_summary

SOURCE = ("the keeper climbed the tower , and the lamp was lit . the tower , and the sea "
          "below it , was quiet that night .").split()
LOOP = "the tower , and the tower , and the tower , and the tower , and the tower ,".split()
RECITAL = "the keeper climbed the tower , and the lamp was lit .".split()


def test_a_greedy_loop_is_called_a_loop_first_and_a_temperature_is_suggested():
    found = analyze(LOOP, SOURCE)
    text = headline(found, len(LOOP), SamplingConfig(temperature=0.0))
    assert text.startswith("### A loop, not recitation")
    assert "temperature of 0.8" in text
    sampled = headline(found, len(LOOP), SamplingConfig(temperature=1.0, seed=0))
    assert "temperature of" not in sampled  # already sampling: no advice to sample


def test_a_recital_is_called_copying():
    found = analyze(RECITAL, SOURCE)
    assert headline(found, len(RECITAL), SamplingConfig()).startswith("### 100% of the generated")


def test_the_highlight_marks_repeats_apart_from_copies_and_joins_up_to_the_text():
    prompt = ["i", "saw"]
    found = analyze(LOOP, SOURCE)
    pieces = highlight(prompt, LOOP, found.spans, "seed")
    assert "".join(text for text, _ in pieces) == " ".join(prompt + LOOP)
    labels = [label for _, label in pieces if label]
    assert labels[0] == "prompt" and REPEATS in labels
    repeated = "".join(text for text, label in pieces if label == REPEATS)
    assert repeated.count("tower") == 4  # every tower after the first is a repeat
    recital = highlight(prompt, RECITAL, analyze(RECITAL, SOURCE).spans, "seed")
    assert {label for _, label in recital} == {"prompt", "copied", None}


def _loaded(max_vocab: int):
    tokens = ("rare " + "a a a b b c " * 3 + "tail").split()  # "tail": the held-out 10%
    vocab = Vocabulary.build(tokens, max_size=max_vocab)
    return SimpleNamespace(source_tokens=tokens, vocab=vocab,
                           config=TrainConfig(max_vocab=max_vocab))


def test_a_word_the_cap_dropped_is_named_as_dropped_by_the_cap():
    message = unknown_words(["rare", "zebra"], _loaded(max_vocab=3))
    assert "not in the training text: 'zebra'" in message
    assert "'rare'" in message and "vocabulary cap of 3" in message


def test_without_a_cap_only_absence_is_named():
    message = unknown_words(["zebra"], _loaded(max_vocab=0))
    assert "not in the training text" in message and "cap" not in message


def test_a_word_only_in_the_held_out_tail_is_named_as_held_out():
    loaded = _loaded(max_vocab=0)
    message = unknown_words(["tail"], loaded)
    assert "only in the held-out last 10%" in message and "'tail'" in message
    assert "not in the training text" not in message


def _summarised(recipe: str, metrics: dict, step: int) -> str:
    loaded = SimpleNamespace(config=TrainConfig.for_recipe(recipe), metrics=metrics, step=step,
                             name="run", note="")
    return run_summary(loaded)


def test_the_why_line_gives_the_loaded_weights_figures_and_says_when_nothing_was_held_out():
    best = _summarised("windows", {"train_loss": 4.0, "best_train_loss": 4.6, "val_loss": 5.66,
                                   "best_val_perplexity": 139.04, "best_step": 75.0}, 75)
    assert "best: perplexity 139.0 at step 75" in best and "train loss 4.60" in best
    assert "5.66" not in best  # the last evaluation's loss is not the loaded weights'
    final = _summarised("seed", {"train_loss": 0.1, "val_loss": 6.0, "best_val_perplexity": 400.0,
                                 "best_step": 600.0}, 600)
    assert "final: perplexity 400.0 at step 600" in final
    unheld = _summarised("memorize", {"train_loss": 0.1, "best_step": 400.0}, 400)
    assert "no text was held out" in unheld and "step 0" not in unheld


def test_samples_are_listed_newest_first_with_unchanged_ones_merged():
    samples = [(20, "the the the"), (40, "the keeper climbed"), (60, "the keeper climbed"),
               (80, "the keeper climbed the *tower*")]
    lines = samples_markdown(samples).splitlines()[2:]
    assert lines[0].startswith("- **step 80**") and "\\*tower\\*" in lines[0]  # escaped
    assert lines[1].startswith("- **steps 40–60**") and lines[2].startswith("- **step 20**")
