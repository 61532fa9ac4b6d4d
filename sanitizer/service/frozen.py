"""Imported last by the fork server: every object loaded so far moves to the garbage collector's
permanent generation (gc.freeze), so that no collection in a worker walks them.

A collection in a forked worker would otherwise touch every object the worker inherited and copy
each page it touches (copy-on-write): about 45 ms of CPU in a one-pair cycle, where the cycle
itself costs a few. The Python documentation gives this use of gc.freeze for forking servers.
"""

import gc

gc.freeze()
