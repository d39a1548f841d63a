"""One quota per credential, shared where its tokens are shared (issue 34).

- :mod:`.spec`: the ``rate_limit`` and ``max_in_flight`` extras, parsed and validated.
- :mod:`.state`: the decision (a bucketed sliding window per rate, expiring leases for requests at once, a
  shared "blocked until", what the API taught), as a pure function of one credential's state: the memory
  and file stores apply it; the Redis store runs the same rules as one Lua script on Redis's clock.
- :mod:`.renewal`: the leases of running requests, renewed until they are given back.
- :mod:`.stores`: memory (one process), file (one machine), Redis (every worker).
- :mod:`.limiter`: what a request does before it is sent (take a permit, or wait, or fail naming the
  quota) and after (give it back, learn from the answer's headers).
- :mod:`.headers`: ``Retry-After``, the IETF ``RateLimit``/``RateLimit-Policy`` and ``X-RateLimit-*``.

Nothing here imports Airflow.
"""
