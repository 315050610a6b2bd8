"""Test-time inference, one subpackage per family (``inference/dekr``); ``cuda_graph`` serves any network."""
