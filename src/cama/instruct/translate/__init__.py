"""Translation of instruction records through any OpenAI-compatible chat API (the seed's step 5).

- ``stage``: ``translate_source`` (the rule) and the two modes; IE records are remade from
  their gold structure instead of being translated;
- ``client``: the ``openai`` SDK with concurrency, requests- and tokens-per-minute windows,
  retries honouring ``Retry-After``, and the budget;
- ``cache``: SQLite (WAL) answers by request hash, and the budget ledger;
- ``validate``: language, length ratio, code kept byte for byte, refusals, empty answers.
"""
