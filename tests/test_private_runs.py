"""A run trained on an upload belongs to the page that trained it: no other visitor can list,
load, generate from, compare or map it, and the uploaded file itself is not kept."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from ui import compare_tab, generate_tab, loss_tab, map_tab, train_tab, training_job
from ui.runs import list_runs, refresh_runs

SECRET = "account pin 4921 is written on the back of the lighthouse log. " * 40


def page(session: str):
    return SimpleNamespace(session_hash=session)


@pytest.fixture
def private_run(temp_store, tmp_path):
    """A run trained in the app on an uploaded file, by the page with session "alice"."""
    upload = tmp_path / "diary.txt"
    upload.write_text(SECRET, encoding="utf-8")
    events = list(train_tab.train(str(upload), "windows", 10, 16, 0.0, 20.0, "alice-run",
                                  request=page("alice")))
    training_job._LOCK.acquire(timeout=60)  # the worker has released it: training is over
    training_job._LOCK.release()
    run_id = list_runs(page("alice"))["run_id"].iloc[0]
    list(train_tab.train(None, "windows", 10, 16, 0.0, 20.0, "public-run", request=page("alice")))
    training_job._LOCK.acquire(timeout=60)
    training_job._LOCK.release()
    public = list_runs(page("bob"))["run_id"].iloc[0]
    return {"run_id": run_id, "upload": upload, "last": events[-1], "public": public}


def test_the_upload_is_deleted_once_read(private_run):
    assert not private_run["upload"].exists()


def test_only_the_training_page_lists_the_run(private_run):
    assert private_run["run_id"] in list(list_runs(page("alice"))["run_id"])
    assert private_run["run_id"] not in list(list_runs(page("bob"))["run_id"])
    assert private_run["run_id"] not in list(list_runs(None)["run_id"])
    picker = refresh_runs(None, page("bob"))[0]
    assert private_run["run_id"] not in [value for _, value in picker.choices]


def test_another_page_cannot_generate_from_it_or_read_its_curves(private_run):
    run_id = private_run["run_id"]
    text = list(generate_tab.generate(run_id, "account pin", 20, request=page("alice")))[-1][0]
    assert text.startswith("account pin")
    for call in (lambda: list(generate_tab.generate(run_id, "account pin", 20,
                                                    request=page("bob"))),
                 lambda: loss_tab.loss_chart(run_id, page("bob")),
                 lambda: compare_tab.compare_runs([run_id, private_run["public"]], page("bob"))):
        with pytest.raises(gr.Error, match="There is no run"):
            call()
    # Named by its run name, it is just as private.
    with pytest.raises(gr.Error, match="There is no run"):
        list(generate_tab.generate("alice-run", "account pin", 20, request=page("bob")))


def refused(call) -> str:
    with pytest.raises(gr.Error) as caught:
        call()
    return str(caught.value)


def test_another_pages_run_reads_exactly_as_a_missing_one_and_is_never_a_candidate(private_run):
    run_id, bob = private_run["run_id"], page("bob")
    for reference in (run_id, run_id[:8], "alice-run"):  # full id, prefix, name
        missing = "z" * len(reference)  # no run's id or name
        for view in (loss_tab.loss_chart, lambda r, req: list(generate_tab.generate(r, "a", 5,
                                                                                   request=req))):
            said = refused(lambda r=reference, v=view: v(r, bob))
            assert said.replace(reference, "X") == refused(
                lambda v=view, m=missing: v(m, bob)).replace(missing, "X")
    # One character matches both runs for their owner, only the public one for anyone else.
    for prefix in {run_id[0], private_run["public"][0]}:
        for call in (lambda p=prefix: compare_tab.compare_runs([p, private_run["public"]], bob),
                     lambda p=prefix: list(generate_tab.generate(p, "account pin", 5, request=bob))):
            try:
                message = refused(call)
            except pytest.fail.Exception:  # resolved to the public run: nothing to refuse
                continue
            assert run_id[:8] not in message and "alice-run" not in message


def test_the_map_shows_it_only_to_its_page(private_run):
    theirs = map_tab.overfitting_map("recipe", page("bob"))[0]
    mine = map_tab.overfitting_map("recipe", page("alice"))[0]
    assert private_run["run_id"] not in list(theirs["run_id"])
    assert private_run["run_id"] in list(mine["run_id"])


def test_a_run_of_the_default_corpus_stays_public(private_run):
    assert "public-run" in list(list_runs(page("bob"))["name"])
    assert len(compare_tab.compare_runs([private_run["run_id"], private_run["public"]],
                                        page("alice"))[2].columns) == 3  # metric + two runs


# ---- the uploads one caller may hand in --------------------------------------------------------

def visitor(host: str, session: str = "s"):
    return SimpleNamespace(client=SimpleNamespace(host=host), session_hash=session)


def test_uploads_are_bounded_per_caller_and_hour_and_deleted_even_when_refused(tmp_path,
                                                                             monkeypatch):
    from ui import limits

    monkeypatch.setattr(limits, "_uploads", {})
    monkeypatch.setattr(limits, "MAX_UPLOAD_BYTES_PER_HOUR", 2_500)
    files = []
    for k in range(3):
        files.append(tmp_path / f"up{k}.txt")
        files[-1].write_text("word " * 200, encoding="utf-8")  # 1,000 bytes
    caller = limits.caller(visitor("10.0.0.7", "first-page"))
    assert train_tab.read_upload(str(files[0]), caller)[0].startswith("word")
    assert train_tab.read_upload(str(files[1]), caller)[0].startswith("word")
    with pytest.raises(gr.Error, match=r"limited to 0.0025 MB an hour .* 0.0 MB came") as refused:
        train_tab.read_upload(str(files[2]), limits.caller(visitor("10.0.0.7", "new-page")))
    assert "\n" not in refused.value.message and "minute" in refused.value.message
    assert not any(f.exists() for f in files)  # the refused one too
    # Another caller has its own allowance; the first gets its own back after an hour.
    limits.charge_upload(limits.caller(visitor("10.0.0.8")), 1_000)
    limits.charge_upload(caller, 1_000, now=limits.time.monotonic() + 3601)


def test_an_upload_over_the_size_bound_is_deleted_too(tmp_path, monkeypatch):
    from ui import limits

    monkeypatch.setattr(limits, "MAX_UPLOAD_BYTES", 100)
    big = tmp_path / "big.txt"
    big.write_text("word " * 100, encoding="utf-8")
    with pytest.raises(gr.Error, match="larger than"):
        train_tab.read_upload(str(big))
    assert not big.exists()
