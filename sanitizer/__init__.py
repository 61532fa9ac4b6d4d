"""calendar-sanitizer: a non-identifying, phone-synced copy of an advocate's work calendar.

Layers, each importing only those below it (enforced by the import contract in pyproject.toml):

- ``cli``      the commands; one set of shared helpers
- ``service``  config loading, credentials, runtime wiring, daemon, lock, status, logs, sd_notify
- ``engine``   one cycle for one pair: read, sanitize, plan, execute, report; the saved state
- ``stores``   the store protocol and one module per kind of calendar server
- ``core``     pure: model, policy, expand, rules, sanitize, plan, identity, phone format
``errors`` and ``files`` are shared leaves that every layer may use. The demo (``demo/``) and the
benchmark (``bench/``) live beside the package in a clone and use it; it imports neither.
"""

__version__ = "0.2.0"
