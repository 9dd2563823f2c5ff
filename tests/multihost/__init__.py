"""Multi-host tests: several hosts as Linux network namespaces on one bridge (``netns.py``), a
Redis primary, replica and three Sentinels and a PostgreSQL in one of them (``cluster.py``)."""
