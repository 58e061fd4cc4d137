"""The imperative shell: the single writer, the HTTP API, agents, git, workspaces, webhooks,
Docker, and startup recovery, all on top of the log (``eventlog``) and the domain
(``projections``)."""

__version__ = "0.2.0"
