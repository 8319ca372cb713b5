"""Test session setup.

Four forced host devices let the suite compare one device with many in a
single process. The flag must be set before JAX is imported anywhere.
"""
import os

os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=4')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# Tests never touch a GPU/TPU even where one exists; results must match the
# golden float32 CPU outputs.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
