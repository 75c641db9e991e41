"""The app's UI, one module per tab; ``app.build_demo()`` assembles them.

Each ``build(...)`` declares its tab's components and wires their events right there (as
Gradio's own demos do), taking the components it needs from other tabs and returning only what
other tabs need. The functions the events call are the plain ones in ``app``.
"""
