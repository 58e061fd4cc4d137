"""Reconcilers: each looks at the state, starts the effects that are due, and records their
outcomes through the engine. The same code finishes, after a crash, whatever a previous
process left half done: an intent in the state without its outcome is simply due again."""
