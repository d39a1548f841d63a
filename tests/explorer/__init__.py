"""The fault explorer: seeded schedules of compound faults against real processes, invariants after each."""
