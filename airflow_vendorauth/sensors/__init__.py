"""Sensors: wait until a vendor API answers what a DAG needs."""
