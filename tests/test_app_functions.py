"""The app's functions called directly: picking runs, generating (streamed, then the report),
and the bounds every caller's value is checked against (ui.limits).

The views of the other tabs are in test_app_views.py, training in the app in
test_app_training.py; the same behaviour seen through gradio_client is in test_app_client.py.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import types

import gradio as gr
import pandas as pd
import pytest

from conftest import RECITER, SEED, clear_run_caches, sqlite_uri
from training import generate as generate_cli
from training import runs
from training.checkpoints import LAST_FILE, MODEL_FILE
from training.store import local_artifact_dir, open_store
from ui import generate_tab, limits
from ui.compare_tab import compare_runs
from ui.generate_tab import generate, suggest_prompt
from ui.inside_tab import gate_heatmap
from ui.loss_tab import loss_curves, temperature_sweep
from ui.report import SPAN_COLUMNS
from ui.runs import default_run, load, refresh_runs, resolve, run_choices

OUTPUTS = ["text", "highlight", "figures", "spans", "novelty", "note", "model", "source"]


def final(updates) -> dict:
    """The last update of a generation, by output name."""
    return dict(zip(OUTPUTS, list(updates)[-1], strict=True))


def as_read(markdown: str) -> str:
    """Markdown as a reader sees it: without the backslashes that escape its markup."""
    return re.sub(r"\\(.)", r"\1", markdown)


# ---- picking a run ----------------------------------------------------------------------------

def test_the_default_run_is_the_newest_demo_run_else_the_newest():
    table = pd.DataFrame({"run_id": ["c", "b", "a"], "name": ["mine", "demo-seed", "demo-windows"]})
    assert default_run(table) == "b"
    assert default_run(table.assign(name=["x", "y", None])) == "c"
    assert default_run(table.iloc[:0]) is None


def test_the_picker_lists_stopped_and_interrupted_runs_with_their_status_not_running_ones():
    table = pd.DataFrame({"run_id": ["a" * 32, "b" * 32, "c" * 32, "d" * 32],
                          "name": ["done", "stopped", "died", "live"],
                          "recipe": ["windows", "seed", "windows", "windows"],
                          "cell": ["lstm", "gru", "lstm", "rnn"],
                          "best_val_perplexity": [139.04, 207.7, None, 5.0],
                          "best_step": [75.0, 600.0, None, 10.0],
                          "status": ["FINISHED", "KILLED", "INTERRUPTED", "RUNNING"]})
    # Each label gives the loaded weights' own figure: the best checkpoint, or the seed
    # recipe's final weights.
    assert [label for label, _ in run_choices(table)] == [
        "done · windows · lstm · best: perplexity 139.0 at step 75 · aaaaaaaa",
        "stopped · seed · gru · final: perplexity 207.7 at step 600 · killed · bbbbbbbb",
        "died · windows · lstm · interrupted · cccccccc"]


def test_an_empty_store_shows_a_notice_and_generating_says_no_run(temp_store):
    run, table, compare, notice = refresh_runs()
    assert run.choices == [] and run.value is None and table.empty
    assert notice.visible and "Train" in notice.value
    with pytest.raises(gr.Error, match="No run selected"):
        list(generate(None, SEED))


def test_refresh_lists_registered_models_first_then_runs_newest_first(use_registered):
    run, table, compare, notice = refresh_runs()
    assert run.choices[0] == ("lighthouse@reciter", RECITER)
    assert [value for _, value in run.choices[1:]] == [use_registered["windows"],
                                                      use_registered["seed"]]
    assert " · lstm · " in run.choices[1][0]
    assert run.value == use_registered["windows"]  # the newest (neither is named demo-…)
    assert compare.value == [use_registered["windows"], use_registered["seed"]]
    assert list(table["name"]) == ["test-windows", "test-seed"] and not notice.visible


def test_refresh_keeps_the_selected_run(use_registered):
    assert refresh_runs(use_registered["seed"])[0].value == use_registered["seed"]
    assert refresh_runs(RECITER)[0].value == RECITER
    assert refresh_runs("gone")[0].value == use_registered["windows"]


@pytest.mark.parametrize("reference", [RECITER, "lighthouse@reciter", "test-seed", "prefix"])
def test_every_way_of_naming_a_run_reaches_the_same_run(use_registered, reference):
    seed = use_registered["seed"]
    reference = seed[:8] if reference == "prefix" else reference
    assert load(reference).run_id == seed
    assert "train_loss" in set(loss_curves(reference)[0]["metric"])
    assert compare_runs([reference, use_registered["windows"]])[0]["series"].str.contains(
        "test-seed").any()


def test_unknown_and_ambiguous_references_are_clear_escaped_errors(use_registered):
    with pytest.raises(gr.Error, match="no model models:/lighthouse@&lt;b&gt;"):
        load("models:/lighthouse@<b>")
    with pytest.raises(gr.Error, match="There is no run"):
        load("no-such-run")
    with pytest.raises(gr.Error, match="nor one whose id starts with it or whose name it is"):
        resolve("test-")  # not a whole run name, and a prefix of no id
    with pytest.raises(gr.Error, match="No run selected"):
        resolve(" ")


def test_a_reference_longer_than_the_limit_is_refused_echoing_a_short_prefix(use_demo_store):
    long = "q" * (limits.MAX_REFERENCE + 1)
    assert resolve(use_demo_store["windows"] + " ") == use_demo_store["windows"]
    for call in (lambda: resolve(long), lambda: list(generate(long * 10, SEED))):
        with pytest.raises(gr.Error, match=f"at most {limits.MAX_REFERENCE} characters") as err:
            call()
        echoed = max(re.findall("q+", err.value.message), key=len)
        assert len(echoed) <= limits.SHOWN_CHARS and len(err.value.message) < 200


def test_a_run_without_model_pt_loads_its_last_checkpoint_and_says_so(demo_store, tmp_path,
                                                                     monkeypatch):
    shutil.copytree(demo_store["store"], tmp_path / "store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(tmp_path / "store"))
    open_store()  # points the copy's artifact locations at its own folder
    (local_artifact_dir(demo_store["windows"]) / MODEL_FILE).unlink()
    clear_run_caches()
    try:
        figures = final(generate(demo_store["windows"], SEED, 10))["figures"]
        assert "no model.pt" in figures and "from last.pt" in figures  # the why line
        (local_artifact_dir(demo_store["windows"]) / LAST_FILE).unlink()
        clear_run_caches()
        with pytest.raises(gr.Error, match="missing"):
            list(generate(demo_store["windows"], SEED, 10))
    finally:
        clear_run_caches()


# ---- generating ---------------------------------------------------------------------------------

def test_generate_streams_the_text_then_sends_the_report(use_demo_store, monkeypatch):
    monkeypatch.setattr(generate_tab, "STREAM_SECONDS", 0)  # every word goes out
    monkeypatch.setattr(generate_tab, "FIRST_WORDS_SECONDS", 0)
    updates = list(generate(use_demo_store["windows"], SEED, 30, 0.8, 0, 1.0, 7))
    assert len(updates) == 30  # after each of the first 29 words, then the text with its report
    texts = [update[0] for update in updates]
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(texts, texts[1:], strict=False))
    # The first update clears the old report (the spans table keeps its columns: an empty
    # table without them shows "1 2 3"); the others leave it alone until the new one is in.
    first = dict(zip(OUTPUTS, updates[0], strict=True))
    assert first["highlight"] is None and first["novelty"] is None and first["model"] == ""
    assert list(first["spans"].columns) == SPAN_COLUMNS and first["spans"].empty
    assert all(value == gr.skip() for update in updates[1:-1] for value in update[1:])
    result = final(updates)
    assert result["highlight"][0] == (SEED, "prompt")
    assert "".join(text for text, _ in result["highlight"]) == result["text"]
    assert list(result["novelty"]["n"]) == [str(n) for n in range(1, 9)]
    assert "4-grams" in result["figures"] and "**Why:** test-windows" in as_read(result["figures"])
    assert "paragraph 1, word 5" in result["note"]  # the seed is the corpus's 5th word on


def test_the_random_seed_makes_a_sampled_text_reproducible(use_demo_store):
    texts = {final(generate(use_demo_store["windows"], SEED, 30, 1.0, 0, 1.0, seed))["text"]
             for seed in (7, 7, 8)}
    assert len(texts) == 2


def test_updates_are_paced_by_the_clock_not_by_the_words(use_demo_store, monkeypatch):
    now, words = [0.0], [0]  # a clock that moves 1/32 s for every word generated (exact in binary)
    real = generate_tab.stream_ids

    def slow_stream_ids(*args):
        for token_id in real(*args):
            now[0] += 1 / 32
            words[0] += 1
            yield token_id

    monkeypatch.setattr(generate_tab, "stream_ids", slow_stream_ids)
    monkeypatch.setattr(generate_tab, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(generate_tab, "STREAM_SECONDS", 4 / 32)
    monkeypatch.setattr(generate_tab, "FIRST_WORDS_SECONDS", 2 / 32)
    sent_at = [words[0] for _ in generate(use_demo_store["windows"], SEED, 60, 0.8, 0, 1.0, 1)]
    assert sent_at[0] == 2  # the first words once 2/32 s have passed
    streamed = sent_at[:-1]
    assert all(b - a == 4 for a, b in zip(streamed, streamed[1:], strict=False))  # every 4/32 s
    assert sent_at[-1] == 60  # and the whole text with its report
    # A text done before its first words are due goes out once, whole, with its report.
    now[0] = 0.0
    monkeypatch.setattr(generate_tab, "FIRST_WORDS_SECONDS", 10 / 32)
    assert len(list(generate(use_demo_store["windows"], SEED, 9, 0.8, 0, 1.0, 1))) == 1


def test_a_memorizing_run_recites_and_the_report_finds_the_copied_spans(use_memorizer):
    result = final(generate(use_memorizer["run_id"], SEED, 40, 0.0))
    copied = [text for text, label in result["highlight"] if label == "copied"]
    assert sum(len(c.split()) for c in copied) >= 20
    spans = result["spans"]
    assert spans["words"].max() >= 10
    assert spans["where in the source"].str.match(r"paragraph \d+, word \d+").all()
    assert "«" in spans["the source there (in context)"].iloc[0]
    assert as_read(result["figures"]).startswith("**Why:** demo-memorizer")
    assert result["novelty"]["novel share"].iloc[3] < 0.5  # few novel 4-grams
    assert result["source"].startswith(", and i went because")  # what follows the seed


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt=""), "empty"),
    (dict(prompt="   "), "empty"),
    (dict(prompt="the zorblax and florp"), "zorblax.*florp"),
    (dict(prompt=["the"]), "The prompt must be text"),
    (dict(length=0), "Length"),
    (dict(length=-5), "Length"),
    (dict(length=10**6), "Length must be a whole number from 1 to 400"),
    (dict(length=2.5), "whole number"),
    (dict(length=float("nan")), "Length must be a whole number from 1 to 400, got nan"),
    (dict(length="many"), "Length must be a whole number from 1 to 400, got 'many'"),
    (dict(temperature=-0.1), "Temperature"),
    (dict(temperature=float("inf")), "Temperature"),
    (dict(top_p=0), "Top-p"),
    (dict(top_p=1.5), "Top-p"),
    (dict(top_k=-1), "Top-k"),
    (dict(seed=-3), "Random seed"),
])
def test_bad_generation_input_is_a_clear_error(use_demo_store, kwargs, message):
    args = {"run_id": use_demo_store["windows"], "prompt": SEED, **kwargs}
    with pytest.raises(gr.Error, match=message):
        list(generate(**args))


@pytest.mark.parametrize("call", ["generate", "temperature_sweep", "gate_heatmap"])
def test_a_huge_prompt_is_refused_by_its_length_in_characters(use_demo_store, call):
    run_id = use_demo_store["windows"]
    fn = {"generate": lambda t: list(generate(run_id, t, 10)),
          "temperature_sweep": lambda t: temperature_sweep(run_id, t, 10),
          "gate_heatmap": lambda t: gate_heatmap(run_id, t)}[call]
    with pytest.raises(gr.Error, match="characters long; the limit is"):
        fn("the " * 400_000)  # 1.6 MB
    with pytest.raises(gr.Error, match="words; the limit is"):
        fn("a " * (limits.MAX_PROMPT_WORDS + limits.MAX_LENGTH + 1))  # under the character limit


def test_a_generation_asks_the_store_nothing_once_the_run_is_loaded(use_demo_store, monkeypatch):
    # Under a classroom's load, store queries per request (the run's metrics, the short id
    # for the command line) were most of a generation's server time.
    run_id = use_demo_store["windows"]
    list(generate(run_id, SEED, 5))  # loads and caches the run

    def no_store(*args, **kwargs):
        raise AssertionError("the store was queried during a generation")

    for name in ("get_run", "resolve_run_id", "list_runs", "open_store"):
        monkeypatch.setattr(runs, name, no_store)
    figures = final(generate(run_id, SEED, 30, 0.8, 0, 1.0, 2))["figures"]
    assert "**Why:**" in figures and f"--run {run_id[:8]}" in figures


def test_the_why_line_names_the_recipe_losses_and_the_weights(use_registered):
    figures = final(generate(RECITER, SEED, 20))["figures"]
    why = next(line for line in as_read(figures).splitlines() if line.startswith("**Why:**"))
    assert "test-seed · seed recipe · LSTM · dropout" in why
    step = load(RECITER).step
    assert "adam" in why and "train loss" in why
    assert f"weights from step {step} (final: perplexity " in why  # its own held-out figure
    assert f"at step {step})" in why
    assert "--model models:/lighthouse@reciter" in figures


def test_the_command_line_shown_gives_the_same_text(use_registered, capsys):
    run_id = use_registered["windows"]
    result = final(generate(run_id, SEED, 25, 0.9, 0, 1.0, 3))
    command = re.search(r"```bash\n(.*)\n```", result["figures"]).group(1)
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "training.generate"]
    assert argv[3:5] == ["--run", run_id[:8]]  # the short prefix, which the command accepts
    assert generate_cli.main(argv[3:]) == 0
    assert capsys.readouterr().out.strip() == result["text"]


def test_the_command_line_measures_the_self_repetition_the_app_reports(use_registered, capsys):
    figures = final(generate(RECITER, SEED, 60))["figures"]
    assert generate_cli.main(["--model", RECITER, "--prompt", SEED, "--length", "60",
                              "--json"]) == 0
    repeated = json.loads(capsys.readouterr().out)["self_repeated_4gram_fraction"]
    assert f"{repeated:.0%} of the generated 4-grams repeat the text's own" in figures


def test_suggest_prompt_offers_words_the_run_knows(use_memorizer):
    assert suggest_prompt(use_memorizer["run_id"], "zorblax") == "i was twenty-three when"
    assert suggest_prompt(use_memorizer["run_id"], SEED) == gr.skip()  # kept as typed
    assert suggest_prompt("no-such-run", SEED) == gr.skip()  # the error shows on Generate


def test_suggest_prompt_skips_words_the_vocabulary_left_out(use_demo_store):
    # The windows run's vocabulary leaves the text's third word out (it occurs once).
    offered = suggest_prompt(use_demo_store["windows"], "zorblax")
    assert offered == "when i went out" and not load(use_demo_store["windows"]).vocab.unknown_words(
        offered.split())


# ---- the bounds (ui.limits) ------------------------------------------------------------------------

@pytest.mark.parametrize("value, shown", [
    (10**400, "a very large integer"), (float("nan"), "nan"), (float("-inf"), "-inf"),
    ("abc", "'abc'"), (True, "True"), (None, "None"), ([1], "a list"), (11, "11"),
])
def test_number_refuses_with_one_line_naming_the_field(value, shown):
    with pytest.raises(gr.Error) as err:
        limits.number(value, "Layer", 1, 10, whole=True)
    assert err.value.message == f"Layer must be a whole number from 1 to 10, got {shown}"


def test_number_takes_numbers_in_range():
    assert limits.number(3.0, "Layer", 1, 10, whole=True) == 3
    assert limits.number("0.5", "Top-p", 0, 1) == 0.5  # a form's text
    with pytest.raises(gr.Error, match="whole number"):
        limits.number(2.5, "Layer", 1, 10, whole=True)


def test_an_echoed_value_is_short_and_never_html():
    shown = limits.shown("<img src=x onerror=alert(1)>" * 1000)
    assert "<img" not in shown and "&lt;img" in shown and len(shown) < 2 * limits.SHOWN_CHARS
    with pytest.raises(gr.Error) as err:
        limits.choice("<b>" + "x" * 10_000, "Color by", ("recipe", "cell"))
    assert "<b>" not in err.value.message and len(err.value.message) < 200


def test_text_counts_characters_before_words():
    assert limits.text("the lamp") == "the lamp" and limits.text(None) == ""
    with pytest.raises(gr.Error, match=f"limit is {limits.MAX_PROMPT_WORDS} words"):
        limits.text("a " * (limits.MAX_PROMPT_WORDS + 1))
    with pytest.raises(gr.Error, match="characters long"):
        limits.text("x" * (limits.MAX_PROMPT_WORDS * limits.CHARS_PER_WORD + 1))
