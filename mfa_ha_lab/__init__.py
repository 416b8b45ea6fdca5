"""The mfa-ha lab: two real PostgreSQL clusters on 127.0.0.2 and 127.0.0.3 with stand-ins for
IBM's proprietary parts. Shared by the tests, the demo and the benchmarks.

Stand-ins (not IBM code): ``standins/pmfad.py`` imitates the PowerSC MFA daemon (an HTTPS
service on port 6793 that reads and writes the MFA database on every request) and
``standins/src.py`` imitates AIX's ``startsrc``/``stopsrc``/``lssrc``.
"""
