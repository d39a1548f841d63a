"""Triggers for deferrable operators: they poll with the async hook, so the worker slot is free."""
