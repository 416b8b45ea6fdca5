"""mfa-ha core: PostgreSQL streaming replication and app control, free of Salt's loader.

The Salt faces in ``_modules``, ``_states``, ``_beacons`` and ``_runners`` are thin adapters
over this package; everything here takes its inputs explicitly and can be used without Salt.
"""

__version__ = "0.1.0"
