"""The mail queue: a durable, group-committed journal (store), its views, and bounces.

``store.QueueStore`` is the entry point; docs/queue-format.md describes the files.
"""
