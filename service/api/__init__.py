"""The HTTP API (Litestar): JSON over bearer tokens, errors as RFC 9457 problem+json.

Handlers hold no rules: they translate requests into commands for the engine (whose
``decide`` judges them) and state into responses, after ``settled()`` so that no answer ever
reflects an event that is not yet durable.
"""
