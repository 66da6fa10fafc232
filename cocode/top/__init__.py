"""`cocode top`: the operator's live view, and the reference external dashboard.

It reads cocode only as any dashboard can (the bus's topics, the store's sync,
the logs collector's backlog, the schemas) and acts only through the public
client and jobs/submit.py, like the CLI. model.py and panes.py are pure folds;
feed.py is the I/O thread; app.py and screens.py are the Textual widgets;
serve.py serves the same app to a browser. Services never import this package.
"""

import os as _os

from cocode import envnames as _envnames

# Textual repaints a screen at most TEXTUAL_FPS times a second (default 60), a value
# it reads once, when first imported: so it is set here, before any of this package
# imports textual. A key pressed within 1/60 s of the last paint waited for the next
# tick; at 120 the key -> screen p99 went 55, 72 -> 35, 37 ms, CPU 11.3-12.5% ->
# 11.7-12.1% (5 agents x 1 MB/s, alternating). The panes' frames stay paced by the feed.
_os.environ.setdefault(_envnames.TEXTUAL_FPS, "120")
