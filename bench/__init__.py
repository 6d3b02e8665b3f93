"""``make bench``: a load benchmark of Parley's production configuration (SPEC P-1, P-2).

Run it with ``python -m bench``; see ``bench/README.md``.
"""
