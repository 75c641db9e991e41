"""The served app's memory stays bounded as new visitors come: Gradio keeps state for every
session it has seen, and the app caps how many (ui.limits.MAX_SESSIONS). The figures, over a
thousand calls, are bench.memory's (docs/benchmarks.md); this checks the cause."""

from __future__ import annotations

import ui
from ui import limits


def test_the_app_keeps_the_state_of_at_most_max_sessions(temp_store, monkeypatch):
    monkeypatch.setattr(limits, "MAX_SESSIONS", 5)
    demo = ui.build_demo()
    try:
        ui.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        for k in range(8):  # eight visitors, each a new session
            demo.state_holder[f"visitor-{k}"]
        kept = list(demo.state_holder.session_data)
        assert kept == [f"visitor-{k}" for k in range(3, 8)]  # the least recently used went
    finally:
        demo.close()
