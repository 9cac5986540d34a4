"""Import the legacy ``gym`` once with its deprecation banner silenced.

procgen (through gym3) and SB3's compatibility shim import ``gym`` 0.26, which prints a
multi-line notice to stderr on import; it is about gym itself, not about anything a user
of this toolkit can act on.
"""

import contextlib
import io

with contextlib.redirect_stderr(io.StringIO()):
    try:
        import gym  # noqa: F401
    except ImportError:  # gym is only needed for ProcGen
        pass
