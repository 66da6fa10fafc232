"""`cocode top`: the operator's live view, and the reference external dashboard.

It reads cocode only as any dashboard can (the bus's topics, the store's sync,
the logs collector's backlog, the schemas) and acts only through the public
client and jobs/submit.py, like the CLI. model.py and panes.py are pure folds;
feed.py is the I/O thread; app.py and screens.py are the Textual widgets;
serve.py serves the same app to a browser. Services never import this package.
"""
